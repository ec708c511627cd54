"""Evaluation and governance from the shell, driven by the model spec, against a real store and MLflow SQLite registry."""
import json

import numpy as np
import pandas as pd
import pytest

from tests.test_cli import run
from wildproof.contracts import infer_contract
from wildproof.datasets import ingest
from wildproof.store import Store


def applications(n, seed=0, start='2024-01-01'):
    "Made-up applications: an outcome 'bad' or 'good' (positive 'bad') that a linear model cannot rank as well as a tree model (|x|)."
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({'id': np.arange(n), 'at': pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * 10, 'min'),
                      'x': rng.normal(size=n), 'z': rng.uniform(0, 10, n), 'colour': rng.choice(['red', 'green', 'blue'], n),
                      'group': rng.choice(['p', 'q'], n)})
    logit = 2.0 * np.abs(f.x) - 1.5 - 0.2 * f.z + (f.colour == 'red') * 1.0
    f['outcome'] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), 'bad', 'good')
    return f


@pytest.fixture(scope='module')
def shell(tmp_path_factory):
    root = tmp_path_factory.mktemp('gov')
    store = Store(root / 'store')
    ref, later = applications(6_000), applications(3_000, seed=1, start='2024-02-15').assign(id=lambda f: f.id + 6_000)
    ingest(store, 'ref', ref)
    ingest(store, 'eval', later)
    ingest(store, 'broken', later.drop(columns=['z']))
    infer_contract(store, 'ref@latest', name='apps', key='id', time_column='at', exclude=['outcome']).register(store)
    env = {'WILDPROOF_STORE_ROOT': str(root / 'store')}
    shell = lambda *a, check=True: run(*a, cwd=root, env=env, check=check)
    # no sensitive attributes: fairness is not applicable; an edge slice on a column the data lacks is flagged, not fatal
    shell('model', 'init', 'risk', '--contract', 'apps', '--target', 'outcome', '--task', 'binary', '--positive', 'bad',
          '--inputs', 'x', 'z', 'colour')
    spec = (root / 'risk.spec.yaml').read_text() + 'edge_slices:\n  savers: savings > 0\n  high z: z > 9\n'
    (root / 'risk.spec.yaml').write_text(spec)
    shell('model', 'register', 'risk.spec.yaml')
    shell.trained = shell('train', 'ref@latest', '--model', 'risk').stdout
    shell.root = root
    return shell


def test_the_governance_path(shell):
    assert 'risk version 1 trained on ref@' in shell.trained
    r = shell('gate', 'risk', '1', '--evaluation', 'missing.json', check=False)
    assert r.returncode == 1 and 'no evaluation file' in r.stderr
    shell('describe', 'risk', '--owner', 'ana', '--tier', 'low', '--use', 'rank applications')
    out = shell('evaluate', 'risk', '1', 'eval@latest', '-o', 'ev.json').stdout
    assert 'ROC AUC' in out and 'fairness not applicable' in out and 'written to ev.json' in out
    assert "slices: savers: edge slice 'savers' (savings > 0): cannot evaluate on this data" in out, out
    ev = json.loads((shell.root / 'ev.json').read_text())
    assert (ev['info']['positive'], ev['info']['sensitive'], ev['fairness']) == ('bad', [], {})
    assert ev['info']['positives'] == int((applications(3_000, seed=1).outcome == 'bad').sum())
    assert [s['support'] for s in ev['slices'] if s['name'] == 'high z'] == [int((applications(3_000, seed=1).z > 9).sum())]
    r = shell('gate', 'risk', '1', '--evaluation', 'ev.json', check=False)
    assert r.returncode == 0 and 'gate PASSED for risk v1 (low risk)' in r.stdout, r.stdout
    assert '✔ largest equalized-odds difference over the sensitive attributes: not applicable' in r.stdout
    shell('approve', 'risk', '1', '--approver', 'ben', '--role', 'technical')
    r = shell('approve', 'risk', '1', '--approver', 'ben', '--role', 'business', check=False)
    assert r.returncode == 1 and 'ben already approved risk v1' in r.stderr
    r = shell('promote', 'risk', '1', check=False)
    assert r.returncode == 1 and 'refused: no business approval' in r.stderr and 'Traceback' not in r.stderr
    shell('approve', 'risk', '1', '--approver', 'cleo', '--role', 'business')
    out = shell('promote', 'risk', '1').stdout
    assert 'risk v1 is now production; card v1: ' in out
    card_md = out.strip().split('card v1: ')[1]
    md = open(card_md).read()
    assert 'Sensitive attributes: none: fairness not applicable.' in md and 'positive label `bad`' in md and 'promote by' in md
    r = shell('rollback', 'risk', check=False)
    assert r.returncode == 1 and 'no earlier production version' in r.stderr
    out = shell('card', 'risk', '1').stdout
    card = json.loads(open(next(l.split()[-1] for l in out.splitlines() if l.split()[0] == 'json')).read())
    assert card['gate']['passed'] is True and [a['approver'] for a in card['approvals']] == ['ben', 'cleo'] and card['in_production']
    assert 'risk' in shell('models').stdout


@pytest.mark.parametrize('args, message', [
    (['evaluate', 'risk', '1', 'broken@latest', '--no-cost'], 'evaluating on it is refused'),
    (['evaluate', 'nope', '1', 'eval@latest'], "no version 1 of model 'nope'"),
    (['evaluate', 'risk', '1', 'ref@nothing'], 'ref@nothing'),
    (['approve', 'risk', '9', '--approver', 'x', '--role', 'technical'], "no version 9 of model 'risk'"),
    (['describe', 'nope', '--owner', 'a', '--tier', 'low', '--use', 'x'], "no model 'nope' in the registry"),
    (['gate', 'nope', '1', '--evaluation', 'ev.json'], "no version 1 of model 'nope'"),
    (['card', 'risk', '9'], "no version 9 of model 'risk'"),
    (['train', 'broken@latest', '--model', 'risk'], 'training on it is refused'),
])
def test_bad_requests_are_one_line(shell, args, message):
    r = shell(*args, check=False)
    assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
