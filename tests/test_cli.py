"""The `wildproof` command line, run as a user runs it: a real process, real files, a real store."""
import os, re, shutil, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest

from wildproof.store import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / 'wildproof'


def run(*args, cwd, env=None, check=True, input=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    e.update(env or {})
    r = subprocess.run([str(EXE), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True, timeout=600, input=input)
    if check: assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_every_subcommand_has_help(tmp_path):
    top = run('--help', cwd=tmp_path).stdout
    for cmd in ['demo', 'settings', 'status', 'ingest', 'snapshots', 'contract', 'validate', 'quarantine', 'report', 'schedule']:
        assert cmd in top
        assert 'usage: wildproof ' + cmd in run(cmd, '--help', cwd=tmp_path).stdout
    for action in ['infer', 'register', 'show', 'list']:
        assert f'usage: wildproof contract {action}' in run('contract', action, '--help', cwd=tmp_path).stdout


@pytest.mark.parametrize('args, message', [
    (['ingest', 'loans', 'missing.csv'], 'no such file'),
    (['ingest', '../x', 'r.csv'], 'bad dataset name'),
    (['contract', 'show', 'nope'], "no contract 'nope'"),
    (['contract', 'infer', 'nope@latest'], "no snapshot 'nope@latest'"),
    (['contract', 'register', 'missing.yaml'], 'no contract file'),
    (['validate', 'r.csv', '--contract', 'nope'], "no contract 'nope'"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    (tmp_path / 'r.csv').write_text('id,a\n1,2\n')
    r = run(*args, cwd=tmp_path, env={'WILDPROOF_STORE_ROOT': str(tmp_path / 'store')}, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith('wildproof: error: ') and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr


def test_bad_settings_are_one_line(tmp_path):
    r = run('status', cwd=tmp_path, env={'WILDPROOF_GATE_MAX_QUARANTINE_SHARE': 'lots'}, check=False)
    assert r.returncode == 1 and 'max_quarantine_share' in r.stderr and 'Traceback' not in r.stderr


def test_argument_mistakes_exit_2_with_usage(tmp_path):
    r = run('validate', 'x.csv', cwd=tmp_path, check=False)
    assert r.returncode == 2 and 'usage:' in r.stderr and '--contract' in r.stderr


def test_gate_from_the_shell(tmp_path):
    env = {'WILDPROOF_STORE_ROOT': str(tmp_path / 'store')}
    ref = pd.DataFrame({'id': range(200), 'income': [1000.0 + i for i in range(200)], 'job': ['a', 'b'] * 100})
    ref.to_csv(tmp_path / 'ref.csv', index=False)
    assert 'ingested as ref@' in run('ingest', 'ref', 'ref.csv', cwd=tmp_path, env=env).stdout
    assert 'already stored as ref@' in run('ingest', 'ref', 'ref.csv', cwd=tmp_path, env=env).stdout
    out = run('contract', 'infer', 'ref@latest', '--key', 'id', '-o', 'c.yaml', cwd=tmp_path, env=env).stdout
    assert 'contract ref v1' in out and (tmp_path / 'c.yaml').exists()
    good = ref.assign(id=range(1000, 1200))
    good.to_csv(tmp_path / 'good.csv', index=False)
    out = run('validate', 'good.csv', '--contract', 'ref', '--dataset', 'batch', cwd=tmp_path, env=env).stdout
    assert out.startswith('accepted:') and '200 accepted, 0 quarantined' in out
    bad = good.assign(id=range(2000, 2200)); bad.loc[:9, 'income'] *= 100; bad.loc[10, 'job'] = 'c'
    bad.to_csv(tmp_path / 'bad.csv', index=False)
    out = run('validate', 'bad.csv', '--contract', 'c.yaml', '--dataset', 'batch', cwd=tmp_path, env=env).stdout
    assert '189 accepted, 11 quarantined' in out and 'range income: 10 rows' in out
    q = run('quarantine', '--rule', 'category', cwd=tmp_path, env=env).stdout
    assert 'job = c: expected one of 2 known categories' in q
    # an edited contract becomes version 2
    (tmp_path / 'c.yaml').write_text((tmp_path / 'c.yaml').read_text().replace('- b', '- b\n    - c'))
    assert 'at version 2' in run('contract', 'register', 'c.yaml', cwd=tmp_path, env=env).stdout
    rejected = good.assign(id=range(3000, 3200), income=good.income * 100)
    rejected.to_csv(tmp_path / 'rej.csv', index=False)
    r = run('validate', 'rej.csv', '--contract', 'ref', '--dataset', 'batch', cwd=tmp_path, env=env, check=False)
    assert r.returncode == 1 and r.stdout.startswith('rejected:') and 'more than the 20% allowed' in r.stdout
    status = run('status', cwd=tmp_path, env=env).stdout
    assert f'schema version {SCHEMA_VERSION}' in status and 'validations' in status


def test_demo_end_to_end(tmp_path):
    r = run('--store', tmp_path / 'store', 'demo', '--rows', '10000', '--no-spark', cwd=tmp_path)   # Spark: the default demo's test
    out = r.stdout
    assert 'CAUGHT' in out and 'where everything is' in out and 'Spark:' not in out
    assert (tmp_path / 'store' / 'contracts' / 'loan_applications.contract.yaml').exists()
    spec = (tmp_path / 'store' / 'specs' / 'credit_risk.spec.yaml').read_text()   # the example's model spec, as registered
    assert 'features: wildproof.examples.credit.features:build' in spec and 'decline' in spec
    assert (tmp_path / 'store' / 'demo' / 'gate_by_week.png').stat().st_size > 10_000
    weeks = pd.read_csv(tmp_path / 'store' / 'demo' / 'gate_by_week.csv')
    assert (weeks.rows == weeks.accepted + weeks.quarantined + weeks.rejected).all()
    assert (weeks.status == 'rejected').sum() >= 1
    # the demo refuses a store it did not make
    (tmp_path / 'other').mkdir(); (tmp_path / 'other' / 'precious.txt').write_text('x')
    r = run('--store', tmp_path / 'other', 'demo', '--rows', '10000', cwd=tmp_path, check=False)
    assert r.returncode == 1 and 'did not make' in r.stderr and (tmp_path / 'other' / 'precious.txt').exists()


def test_demo_at_its_default_size_promotes_a_champion_with_a_card(default_demo):
    "The README's main job: 200,000 applications, the incident caught, a champion gated, approved, promoted, its card written."
    out, tmp_path = default_demo.out, default_demo.root
    assert 'CAUGHT' in out and 'gate (low-risk policy): PASSED' in out
    assert 'model spec credit_risk v1: binary on defaulted, approve below 0.25 and decline at or above' in out
    # the separation of duties with the demo's own people: one refusal of each kind, each naming its rule and what is missing
    assert ('refused (no approvals): promotion of credit_risk v1 to production refused: no technical approval; no business approval '
            '([policy_low] approvals = technical, business)') in out
    assert "refused (impersonation): cannot act as 'otto': wrong password" in out
    assert 'refused (the author approving): [policy_low] author_may_approve = false: dana trained or registered credit_risk v1, so may not approve it' in out
    assert 'refused (a missing role): approval of credit_risk v1 refused: bo may not do this: a technical approval needs validator; bo has business_owner' in out
    assert 'refused (one person, two roles): tara already approved credit_risk v1 (as technical)' in out
    assert 'promoted to production by otto (operator)' in out
    people = tmp_path / 'store' / 'demo' / 'principals.json'
    assert people.stat().st_mode & 0o777 == 0o600 and 'scrypt:' in people.read_text() and 'sha256:' in people.read_text()
    card = (tmp_path / 'store' / 'cards' / 'credit_risk' / 'v1' / 'card.md').read_text()
    assert 'ROC AUC' in card and 'tara (technical)' in card and 'bo (business)' in card and 'loans_reference@' in card
    models = run('--store', tmp_path / 'store', 'models', '--history', 'credit_risk', cwd=tmp_path).stdout
    assert 'production' in models and 'promote' in models and 'otto' in models
    assert 'governance record: ok' in run('--store', tmp_path / 'store', 'governance', 'verify', cwd=tmp_path,
                                           env={'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(people)}).stdout
    # serving: batch, a challenger in shadow then on a canary, replay, champion-challenger, promotion and rollback in the running service
    assert 'not scored: 2024-10-07/2024-10-13 (rejected by the gate)' in out
    assert 'challenger credit_risk v2' in out and 'gate PASSED' in out
    assert 'v2 shadowed every one' in out and 'answered by the canary v2' in out
    # the REST service is locked: a request without a token is refused (401), one with the outcomes feed's token on /predict too (403)
    assert re.search(r"the REST service refuses whoever lacks a token with the scope: no token: 401 \(no bearer token.*?\); "
                     r"the outcomes feed's token: 403 \(client outcomes-feed lacks the scope predict", out), out
    assert 'champion-challenger on loans_challenge@' in out and ': PASSED' in out
    assert 'otto promoted v2 (approved by tara and bo): the running service answered with v2' in out and 'rolled back: v1 again' in out
    assert 'audit log verified' in out and 'chain intact' in out
    assert (tmp_path / 'store' / 'demo' / 'serving.png').stat().st_size > 10_000
    verify = run('--store', tmp_path / 'store', 'audit', 'verify', cwd=tmp_path)
    assert verify.returncode == 0 and 'chain intact' in verify.stdout
    assert 'batch records point at the rows of' in out   # by reference, not copied (decision 0008); the demo names one to look at
    one = out.split('What the model saw for one: `wildproof audit show ')[1].split('`')[0]
    shown = run('--store', tmp_path / 'store', 'audit', 'show', one, cwd=tmp_path).stdout
    assert '"input_snapshot": "loan_applications@' in shown and '"region_default_rate"' in shown
    assert 'rollback' in run('--store', tmp_path / 'store', 'models', '--history', 'credit_risk', cwd=tmp_path).stdout
    # monitoring: the incident, the recession as drift in its first month and as a realized accuracy drop once its outcomes matured
    timeline = out[out.index('alert timeline'):]
    # (a table: its column widths follow the longest rule, e.g. a latency SLA alert when the REST month ran on a busy machine)
    assert re.search(r'2024-10 +gate\.quarantine_share', timeline), timeline
    assert re.search(r'2025-04 +data_drift\.psi +income', timeline), timeline
    assert 'performance.accuracy' in timeline and 'investigate' in timeline
    assert 'retraining triggers: drift alerts on income' in out
    assert 'challenger v3 trained on credit_risk_retraining@' in out
    assert ('on staging: the canary' in out and 'canary verdict:' in out) or 'stays a candidate' in out
    assert (tmp_path / 'store' / 'demo' / 'monitoring.png').stat().st_size > 10_000
    alerts = run('--store', tmp_path / 'store', 'alerts', '--state', 'open', cwd=tmp_path).stdout
    assert 'data_drift.psi' in alerts and 'income' in alerts
    # the engine: the incident week validated again on Spark, compared with DuckDB row by row; or one line saying how to get Spark
    try:
        import pyspark  # noqa: F401
        spark = shutil.which('java') is not None
    except ImportError: spark = False
    if spark:
        assert re.search(r"Spark: the incident week loan_applications@\w+ validated again on Spark \(local\[2\], \d+ s with the session start\): "
                         r"rejected, 0 accepted, [\d,]+ quarantined; every rule count and all [\d,]+ quarantined rows with their values the same as DuckDB's", out), out
        # and the month with the most alerts monitored again on Spark: every metric row (and so every alert) the same as DuckDB's
        m = re.search(r"Spark: the month \d{4}-\d\d of credit_risk monitored again on Spark \(\d+ s\): all (\d+) metric rows \(drift, service, business, "
                      r"realized and estimated performance; (\d+) alerts among them\) the same as DuckDB's", out)
        assert m and int(m.group(1)) > 50 and int(m.group(2)) > 0, out
    else: assert 'Spark: skipped, [engine] kind = spark needs' in out and 'wildproof[spark]' in out
