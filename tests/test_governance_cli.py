"""Training, evaluation and governance from the shell, against a real store and MLflow SQLite registry."""
import json

import pytest

from tests.test_cli import run
from wildproof.examples.credit import world
from wildproof.contracts import infer_contract
from wildproof.datasets import ingest
from wildproof.store import Store


@pytest.fixture(scope='module')
def shell(tmp_path_factory):
    root = tmp_path_factory.mktemp('gov')
    store = Store(root / 'store')
    ref, later = world.split_reference(world.generate_world(rows=20_000, seed=5), 6)
    ingest(store, 'ref', ref)
    ingest(store, 'eval', later[later.applied_at < '2025-01-01'])
    broken = later[later.applied_at < '2024-08-01'].drop(columns=['income'])
    ingest(store, 'broken', broken)
    infer_contract(store, 'ref@latest', name='apps', key=world.key, time_column=world.time_column,
                   exclude=[world.target, world.outcome_time_column]).register(store)
    env = {'WILDPROOF_STORE_ROOT': str(root / 'store')}
    shell = lambda *a, check=True: run(*a, cwd=root, env=env, check=check)
    shell.trained = shell('train', 'ref@latest', '--contract', 'apps', '--name', 'credit').stdout
    return shell


def test_the_governance_path(shell):
    out = shell.trained
    assert 'credit version 1 trained on ref@' in out and 'alias candidate -> v1' in out
    r = shell('gate', 'credit', '1', '--evaluation', 'missing.json', check=False)
    assert r.returncode == 1 and 'no evaluation file' in r.stderr
    shell('describe', 'credit', '--owner', 'ana', '--tier', 'high', '--use', 'rank applications')
    out = shell('evaluate', 'credit', '1', 'eval@latest', '--no-cost', '-o', 'ev.json').stdout
    assert 'ROC AUC' in out and 'written to ev.json' in out
    r = shell('gate', 'credit', '1', '--evaluation', 'ev.json', check=False)
    # a high-risk policy: ROC AUC >= 0.75 and a baseline margin of 0.02, which 5,000 training rows do not give
    assert r.returncode == 1 and 'gate FAILED for credit v1 (high risk)' in r.stdout and 'baseline' in r.stdout
    shell('approve', 'credit', '1', '--approver', 'ben', '--role', 'technical')
    r = shell('approve', 'credit', '1', '--approver', 'ben', '--role', 'business', check=False)
    assert r.returncode == 1 and 'ben already approved credit v1' in r.stderr
    shell('approve', 'credit', '1', '--approver', 'cleo', '--role', 'business')
    r = shell('promote', 'credit', '1', check=False)
    assert r.returncode == 1 and 'refused: its gate verdict failed' in r.stderr and 'Traceback' not in r.stderr
    r = shell('rollback', 'credit', check=False)
    assert r.returncode == 1 and 'no earlier production version' in r.stderr
    out = shell('card', 'credit', '1').stdout
    card = json.loads(open(next(l.split()[-1] for l in out.splitlines() if l.split()[0] == 'json')).read())
    assert card['gate']['passed'] is False and [a['approver'] for a in card['approvals']] == ['ben', 'cleo']
    assert 'credit' in shell('models').stdout


@pytest.mark.parametrize('args, message', [
    (['evaluate', 'credit', '1', 'broken@latest', '--no-cost'], 'evaluating on it is refused'),
    (['evaluate', 'nope', '1', 'eval@latest'], "no version 1 of model 'nope'"),
    (['approve', 'credit', '9', '--approver', 'x', '--role', 'technical'], "no version 9 of model 'credit'"),
    (['describe', 'nope', '--owner', 'a', '--tier', 'low', '--use', 'x'], "no model 'nope' in the registry"),
    (['train', 'broken@latest', '--contract', 'apps', '--name', 'credit'], 'training on it is refused'),
])
def test_bad_requests_are_one_line(shell, args, message):
    r = shell(*args, check=False)
    assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
