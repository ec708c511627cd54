"""Reports: the templates run by papermill on the default demo's store, as a user and a scheduler run them.

The demo's own scheduled pass made the first reports; the tests read them, then run edge cases and faults on private copies."""
import fcntl, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pandas as pd

from wildproof import reports, schedule
from wildproof.store import Store
from tests.people import PASSWORD, as_, team_env

EXE = Path(sys.executable).parent / 'wildproof'
TEMPLATES = Path(reports.__file__).parent / 'templates'


def cli(*args, store, check=True, env=None, **kw):
    e = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    e.update(WILDPROOF_REPORTS_LOG_TO_MLFLOW='false', **team_env(), **(env or {}))
    if args[0] == 'report' and args[1] in reports.KINDS and '--parameters' not in args:   # a run that writes: by an operator
        args, kw = (*args, *as_('ops')), dict(kw, input=PASSWORD + '\n')
    r = subprocess.run([str(EXE), '--store', str(store), *map(str, args)], env=e, capture_output=True, text=True, timeout=600, **kw)
    if check: assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_the_demo_made_every_kind_of_report(default_demo):
    out = default_demo.out
    assert '22. scheduled reports' in out and 'run again with nothing new' in out and ', 0 made' in out
    assert '23. `wildproof report diff`' in out
    store = Store(default_demo.store)
    idx = reports.index(store, status='ok')
    assert set(idx.kind) == {'validation', 'evaluation', 'monitoring', 'model_card'}
    mon = idx[idx.kind == 'monitoring']
    assert len(mon) >= 12 and mon.name.is_unique                      # one report per month
    for r in idx.itertuples():                                          # each folder complete, read-only, its summary indexed
        d = Path(r.path)
        assert {p.name for p in d.iterdir()} == {f'{r.kind}.ipynb', f'{r.kind}.html', 'summary.json'}
        assert all((p.stat().st_mode & 0o222) == 0 for p in d.iterdir())
        assert json.loads((d / 'summary.json').read_text()) == json.loads(r.summary_json)
        assert d.relative_to(store.root / 'reports').parts[:3] == (r.kind, r.model, f'v{r.version}')
        code = json.loads(r.code_version)
        assert code['wildproof'] and r.template_hash and json.loads(r.inputs_json)
    # the incident week: its rejected batch has a validation report; the recession months have drift alerts
    val = idx[idx.kind == 'validation'].summary_json.map(json.loads)
    assert any(s['verdict'] == 'rejected' and s['metrics']['rows_quarantined'] > 0 for s in val)
    months = {json.loads(s)['name']: json.loads(s) for s in mon.summary_json}
    assert months['2025-04']['verdict'] == 'alert' and any('data_drift.psi income' in a for a in months['2025-04']['alerts'])
    assert months['2024-08']['metrics']['data_drift.psi[income]'] < 0.1
    assert 'data_drift.psi[income]' in months['2025-05']['flagged']       # still drifting: flagged, its alert (opened in April) still open
    # evaluation reports carry the gate's verdict; the card report the production version
    ev = idx[idx.kind == 'evaluation']
    assert {json.loads(s)['verdict'] for s in ev.summary_json} <= {'passed', 'failed'} and len(ev) >= 2
    m = json.loads(ev.summary_json.iloc[0])['metrics']
    assert m['roc_auc'] > 0.7 and 0 <= m['fairness.sex.equalized_odds_difference'] < 1
    card = json.loads(idx[idx.kind == 'model_card'].summary_json.iloc[-1])
    assert card['in_production'] and card['metrics']['roc_auc'] > 0.7


def test_reports_are_logged_to_the_model_versions_mlflow_run(default_demo):
    from mlflow import MlflowClient
    store = Store(default_demo.store)
    r = reports.index(store, kind='evaluation', status='ok').iloc[0]
    assert r.mlflow_run
    client = MlflowClient(tracking_uri=f'sqlite:///{store.root / "mlflow.db"}')
    names = [a.path for a in client.list_artifacts(r.mlflow_run, 'reports/evaluation')]
    assert f'reports/evaluation/{Path(r.path).name}' in names


def test_templates_declare_commented_parameters_and_hold_no_logic():
    import papermill as pm
    for kind in reports.KINDS:
        nb = json.loads(reports.template(kind).read_text())
        tagged = [c for c in nb['cells'] if 'parameters' in c['metadata'].get('tags', [])]
        assert len(tagged) == 1, kind
        params = pm.inspect_notebook(str(reports.template(kind)))
        assert 'store' in params and all(p['help'] for p in params.values()), (kind, params)
        code = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code' and c not in tagged]
        for src in code:   # every cell calls the package: an import, `r = reports.build(...)` or `r.<method>(...)`
            for line in src.splitlines():
                assert line.startswith(('from wildproof import reports', 'r = reports.build(', 'r.show(', 'r.save(')), (kind, line)
    # the docs pages are what the templates make
    r = subprocess.run([sys.executable, 'tools/readme.py', '--check'], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_nbval_runs_every_template_with_its_default_parameters(demo_copy, tmp_path):
    "Each template, executed as it ships (its defaults: the only model, its latest window, gated version, validated batch)."
    tpl = tmp_path / 'templates'
    shutil.copytree(TEMPLATES, tpl)
    e = dict(os.environ, WILDPROOF_STORE_ROOT=str(demo_copy), WILDPROOF_MONITORING_WINDOW='month')
    e.pop('WILDPROOF_SETTINGS', None)
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--nbval-lax', str(tpl)], cwd=tmp_path,
                       env=e, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert f'{len(reports.KINDS)} passed' in r.stdout or 'passed' in r.stdout
    s = json.loads((tmp_path / 'templates' / 'summary.json').read_text())   # written by the last template run
    assert s['kind'] in reports.KINDS


def test_a_report_uses_the_settings_file_the_runner_used(demo_copy, tmp_path):
    """`wildproof report` run beside a settings.ini whose store and MLflow database live elsewhere: the report's kernel, which
    starts in the report's own folder (where no settings.ini is found), reads the same file and finds the model in that database."""
    elsewhere = tmp_path / 'tracking'
    elsewhere.mkdir()
    shutil.move(demo_copy / 'mlflow.db', elsewhere / 'mlflow.db')
    project = tmp_path / 'project'
    project.mkdir()
    (project / 'settings.ini').write_text(f'[store]\nroot = {demo_copy}\n[mlflow]\ntracking_uri = sqlite:///{elsewhere / "mlflow.db"}\n'
                                          '[reports]\nlog_to_mlflow = false\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}, **team_env()}
    r = subprocess.run([str(EXE), 'report', 'model_card', 'version=2', *as_('ops')], cwd=project, env=env, capture_output=True, text=True, timeout=600,
                       input=PASSWORD + '\n')
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((Path(r.stdout.strip().splitlines()[-1]) / 'summary.json').read_text())
    assert (s['kind'], s['version'], s['status']) == ('model_card', '2', 'ok')
    assert not (demo_copy / 'mlflow.db').exists()   # nothing fell back to the default database in the store


def test_a_rerun_with_the_same_inputs_is_recognised_and_new_inputs_make_a_new_version(demo_copy):
    store = Store(demo_copy)
    before = len(reports.index(store))
    r = cli('report', 'monitoring', 'window=2025-04-10', 'granularity=month', store=demo_copy)
    assert 'already reported with the same inputs' in r.stdout
    assert len(reports.index(store)) == before
    # more outcomes change the window's metrics: the next report of that month is a new version beside the first
    first = reports.index(store, kind='monitoring', status='ok')
    first = first[first.name == '2025-04'].iloc[0]
    from wildproof.monitoring import monitor
    monitor(store, 'credit_risk', window='2025-04-10', as_of='2025-05-15', granularity='month', progress=False)   # fewer outcomes known
    r = cli('report', 'monitoring', 'window=2025-04-10', 'granularity=month', store=demo_copy)
    new = Path(r.stdout.strip().splitlines()[-1])
    assert new.name == '2025-04.r2' and new.parent == Path(first.path).parent and Path(first.path).is_dir()
    d = cli('report', 'diff', first.run_id[:12], reports.index(store).run_id.iloc[-1][:12], store=demo_copy).stdout
    assert 'performance.label_completeness' in d and 'metrics changed' in d


def test_edge_cases_are_clear(demo_copy, tmp_path):
    store = Store(demo_copy)
    # an empty window: a complete "no data" report, not a crash
    r = cli('report', 'monitoring', 'window=2031-01-05', store=demo_copy)
    folder = Path(r.stdout.strip().splitlines()[-1])
    s = json.loads((folder / 'summary.json').read_text())
    assert s['status'] == 'no data' and s['verdict'] == 'no data' and s['metrics'] == {}
    assert 'No data' in (folder / 'monitoring.html').read_text()
    # unknown parameters, models, versions, kinds: one line, exit 1 (or usage, exit 2), nothing written
    n = len(reports.index(store))
    for args, message in [(['monitoring', 'colour=red'], 'unknown parameter colour'),
                          (['monitoring', 'model=nope'], "model 'nope' has no inventory entry"),
                          (['evaluation', 'version=99'], 'no version 99'),
                          (['model_card', 'version=staging9'], "no version with the alias 'staging9'"),
                          (['validation', 'snapshot=nope@latest'], "nope"),
                          (['monitoring', 'store=/x'], 'set by the runner'),
                          (['monitoring', 'window'], 'key=value')]:
        r = cli('report', *args, store=demo_copy, check=False)
        assert r.returncode == 1 and r.stderr.startswith('wildproof: error: ') and message in r.stderr, (args, r.stderr)
        assert 'Traceback' not in r.stderr
    assert cli('report', 'weekly', store=demo_copy, check=False).returncode == 2
    assert len(reports.index(store)) == n
    p = cli('report', 'monitoring', '--parameters', store=demo_copy).stdout
    assert 'window = ' in p and '# a date inside the window' in p


def test_a_failing_run_is_recorded_kept_apart_and_alerted(demo_copy):
    store = Store(demo_copy)
    ev = reports.index(store, kind='evaluation', status='ok').iloc[-1]
    from wildproof.registry import latest_verdict
    f = Path(latest_verdict(store, ev.model, ev.version).evidence['evaluation_file'])
    f.write_text('{"info": "damaged"}')          # the evidence behind the report is damaged
    r = cli('report', 'evaluation', f'version={ev.version}', store=demo_copy, check=False)
    assert r.returncode == 1 and 'report FAILED' in r.stderr
    row = reports.index(store, kind='evaluation').iloc[-1]
    assert row.status == 'failed' and row.error and pd.isna(row.summary_json)
    d = Path(row.path)
    assert d.name.endswith('.FAILED') and (d / 'evaluation.ipynb').is_file() and (d / 'error.txt').is_file()
    assert not (d / 'summary.json').exists()                # nothing in it looks like a finished report
    a = store.sql("select * from alerts where rule = 'report.failed'")
    assert len(a) == 1 and a.state.iloc[0] == 'open' and 'evaluation' in a.message.iloc[0]
    assert 'evaluation' in cli('alerts', '--state', 'open', store=demo_copy).stdout


def test_a_killed_run_leaves_no_result_and_the_next_pass_repeats_it(demo_copy):
    store = Store(demo_copy)
    e = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    e.update(WILDPROOF_REPORTS_LOG_TO_MLFLOW='false', **team_env())
    carded = set(reports.index(store, kind='model_card').version)
    v = next(v for v in ('1', '2', '3', '4') if v not in carded)      # a version without a card report yet
    p = subprocess.Popen([str(EXE), '--store', str(demo_copy), 'report', 'model_card', f'version={v}', *as_('ops')], env=e, start_new_session=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write((PASSWORD + '\n').encode()); p.stdin.close()
    partial = demo_copy / 'reports' / '.partial'
    t = time.time()
    while time.time() - t < 60 and not (partial.exists() and any(partial.iterdir())): time.sleep(0.05)
    assert partial.exists() and any(partial.iterdir()), 'the run never started'
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    cards = reports.index(store, kind='model_card')
    assert not (cards.version == v).any()
    assert not (demo_copy / 'reports' / 'model_card' / 'credit_risk' / f'v{v}').exists()
    r = cli('report', 'model_card', f'version={v}', store=demo_copy)
    folder = Path(r.stdout.strip().splitlines()[-1])
    assert (folder / 'summary.json').is_file() and not any(partial.iterdir())


def test_schedule_catches_up_in_order_and_a_held_lock_skips_the_job(demo_copy):
    store = Store(demo_copy)
    # the schedule's monitoring job is held by another pass: this one skips it
    (demo_copy / 'locks').mkdir(exist_ok=True)
    with open(demo_copy / 'locks' / 'schedule-monitoring.lock', 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = cli('schedule', 'run', '--job', 'monitoring', '--force', '--as-of', '2027-02-01', store=demo_copy, env={'WILDPROOF_MONITORING_WINDOW': 'month'})
        assert 'skipped, another pass of this job is running' in r.stdout
    # missed months are caught up, oldest first (two at a time), without repeating the ones already reported
    from copy import deepcopy
    from wildproof.settings import load_settings
    st = deepcopy(load_settings()); st['monitoring'].update(window='month')
    before = reports.index(store, kind='monitoring', status='ok')
    runs = schedule.run(store, jobs=['monitoring'], as_of='2027-02-01', force=True, settings=st, progress=False, echo=lambda m: None)
    after = reports.index(store, kind='monitoring', status='ok')
    new = after[~after.run_id.isin(before.run_id)]
    made = runs[runs.status == 'ok']
    assert len(new) >= 1 and sorted(made.name) == sorted(new.name) and not set(new.name) & set(before.name)
    assert list(made.name) == sorted(made.name) and (runs.status.isin(['ok', 'exists'])).all()
    assert all(json.loads(s)['status'] == 'no data' for s in new.summary_json)   # months after the demo's data: nothing served
    out = cli('schedule', 'run', '--job', 'monitoring', '--force', '--as-of', '2027-02-01', store=demo_copy, env={'WILDPROOF_MONITORING_WINDOW': 'month'}).stdout
    assert 'monitoring: 0 new report(s)' in out
    # only the windows whose metrics that pass computed again (outcomes still missing) are checked again, not every month
    assert int(out.split('new report(s), ')[1].split()[0]) < len(set(after.name)) / 2, out
    # a window whose metrics are computed again after its report is checked again, and only that one
    from wildproof.monitoring import monitor
    due = lambda: {d['window'][:7] for d in schedule.due(store, 'monitoring', as_of='2027-02-01', settings=st)}
    before_due = due()
    monitor(store, 'credit_risk', window='2025-04-10', as_of='2025-05-15', granularity='month', progress=False)
    assert due() == before_due | {'2025-04'} and len(due()) < len(set(after.name)) / 2
    # without --force, a pass within the job's period does nothing
    assert 'not due' in cli('schedule', 'run', '--job', 'monitoring', store=demo_copy).stdout


def test_schedule_serve_runs_passes_until_terminated(demo_copy):
    e = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    e.update(WILDPROOF_REPORTS_LOG_TO_MLFLOW='false', WILDPROOF_SCHEDULE_INTERVAL_SECONDS='1', WILDPROOF_SCHEDULE_MONITORING='off')
    p = subprocess.Popen([str(EXE), '--store', str(demo_copy), 'schedule', 'serve'], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(12)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.count('model_card: ') >= 2 and 'schedule stopped after' in out
