"""Evaluation and governance from the shell, driven by the model spec, against a real store and MLflow SQLite registry; every
governance command acts as an authenticated person of a real principals file (tests/people.py's team, and one person holding
two roles), and each separation-of-duties rule refuses with the rule and the missing role."""
import json, subprocess

import numpy as np
import pandas as pd
import pytest

from tests.people import PASSWORD, as_, team
from tests.test_cli import run
from wildproof import principals
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
    people = team(root / 'principals.json')   # dev, val, biz, aud, ops, sam: one role each
    principals.add_person(people, 'both', PASSWORD, ['validator', 'business_owner'])   # one person who could fill two approval roles
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(root / 'aud_key')], check=True)
    principals.add_person(people, 'aud', None, ['auditor'], ssh_key=(root / 'aud_key.pub').read_text())   # aud signs her approvals
    env = {'WILDPROOF_STORE_ROOT': str(root / 'store'), 'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(people)}
    def shell(*a, who=None, password=PASSWORD, check=True):
        "A command, acting as `who` (its password on standard input) when given."
        return run(*a, *(as_(who) if who else []), cwd=root, env=env, check=check, input=f'{password}\n' if who else None)
    # no sensitive attributes: fairness is not applicable; an edge slice on a column the data lacks is flagged, not fatal
    shell('model', 'init', 'risk', '--contract', 'apps', '--target', 'outcome', '--task', 'binary', '--positive', 'bad',
          '--inputs', 'x', 'z', 'colour')
    spec = (root / 'risk.spec.yaml').read_text() + 'edge_slices:\n  savers: savings > 0\n  high z: z > 9\n'
    (root / 'risk.spec.yaml').write_text(spec)
    shell('model', 'register', 'risk.spec.yaml')
    shell.trained = shell('train', 'ref@latest', '--model', 'risk', who='dev').stdout   # dev is the author of v1
    shell.root = root
    return shell


def test_the_governance_path(shell):
    assert 'risk version 1 trained on ref@' in shell.trained
    r = shell('gate', 'risk', '1', '--evaluation', 'missing.json', check=False)
    assert r.returncode == 1 and 'no evaluation file' in r.stderr
    r = shell('describe', 'risk', '--owner', 'ana', '--tier', 'high', '--use', 'rank applications', who='ops', check=False)
    assert r.returncode == 1 and 'ops may not do this: [access] describe_roles needs developer or business_owner; ops has operator' in r.stderr, r.stderr
    assert 'described by dev' in shell('describe', 'risk', '--owner', 'ana', '--tier', 'high', '--use', 'rank applications', who='dev').stdout
    out = shell('evaluate', 'risk', '1', 'eval@latest', '-o', 'ev.json').stdout
    assert 'ROC AUC' in out and 'fairness not applicable' in out and 'written to ev.json' in out
    assert "slices: savers: edge slice 'savers' (savings > 0): cannot evaluate on this data" in out, out
    ev = json.loads((shell.root / 'ev.json').read_text())
    assert (ev['info']['positive'], ev['info']['sensitive'], ev['fairness']) == ('bad', [], {})
    assert ev['info']['positives'] == int((applications(3_000, seed=1).outcome == 'bad').sum())
    assert [s['support'] for s in ev['slices'] if s['name'] == 'high z'] == [int((applications(3_000, seed=1).z > 9).sum())]
    r = shell('gate', 'risk', '1', '--evaluation', 'ev.json', check=False)
    assert r.returncode == 0 and 'gate PASSED for risk v1 (high risk)' in r.stdout, r.stdout
    assert '✔ largest equalized-odds difference over the sensitive attributes: not applicable' in r.stdout

    def refused(*args, who, message, password=PASSWORD):
        r = shell(*args, who=who, password=password, check=False)
        assert r.returncode == 1 and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
    r = shell('promote', 'risk', '1', check=False)   # nobody named
    assert r.returncode == 1 and '`wildproof promote` records who acts: name yourself with --as NAME' in r.stderr, r.stderr
    refused('promote', 'risk', '1', who='ops',
            message='refused: no technical approval; no business approval; no audit approval ([policy_high] approvals = technical, business, audit)')
    # impersonation: biz's name without biz's password
    refused('approve', 'risk', '1', '--role', 'business', who='biz', password='a guess', message="cannot act as 'biz': wrong password")
    # a missing role
    refused('approve', 'risk', '1', '--role', 'technical', who='dev', message='a technical approval needs validator; dev has developer')
    # one person in two approval roles
    assert 'both (technical)' in shell('approve', 'risk', '1', '--role', 'technical', '--note', 'validated', who='both').stdout
    refused('approve', 'risk', '1', '--role', 'business', who='both', message='both already approved risk v1 (as technical): each approval needs a different person')
    shell('approve', 'risk', '1', '--role', 'business', who='biz')
    # the high tier's third line: no production without the auditor
    refused('promote', 'risk', '1', who='ops', message='refused: no audit approval ([policy_high] approvals = technical, business, audit)')
    refused('approve', 'risk', '1', '--role', 'audit', who='val', message='an audit approval needs auditor; val has validator')
    refused('promote', 'risk', '1', who='val', message='[access] promote_roles needs operator; val has validator')
    out = shell('approve', 'risk', '1', '--role', 'audit', '--sign-with', shell.root / 'aud_key', who='aud').stdout
    assert 'both (technical), biz (business), aud (audit, signed)' in out, out
    out = shell('promote', 'risk', '1', who='ops').stdout
    assert 'risk v1 is now production; card v1: ' in out
    card_md = out.strip().split('card v1: ')[1]
    md = open(card_md).read()
    assert 'Sensitive attributes: none: fairness not applicable.' in md and 'positive label `bad`' in md and 'promote by ops' in md
    assert 'aud (audit)' in md and 'signature verified' in md and 'both (technical)' in md and 'signature unsigned' in md, md
    refused('rollback', 'risk', who='biz', message='[access] rollback_roles needs operator; biz has business_owner')
    refused('rollback', 'risk', who='ops', message='no earlier production version')
    out = shell('card', 'risk', '1').stdout
    card = json.loads(open(next(l.split()[-1] for l in out.splitlines() if l.split()[0] == 'json')).read())
    assert card['gate']['passed'] is True and card['in_production']
    assert [(a['approver'], a['role'], a['signature']) for a in card['approvals']] == [('both', 'technical', 'unsigned'), ('biz', 'business', 'unsigned'),
                                                                                      ('aud', 'audit', 'verified')]
    assert 'risk' in shell('models').stdout
    assert 'governance record: ok' in shell('governance', 'verify').stdout   # the approvals, the signed one too, on the chained record


def test_the_author_may_not_approve(shell):
    "Who trains a version may not approve it ([policy_<tier>] author_may_approve = false), whatever roles they hold."
    assert 'risk version 2 trained' in shell('train', 'ref@latest', '--model', 'risk', who='val').stdout   # val, a validator, is its author
    r = shell('approve', 'risk', '2', '--role', 'technical', who='val', check=False)
    assert r.returncode == 1 and '[policy_high] author_may_approve = false: val trained or registered risk v2, so may not approve it' in r.stderr, r.stderr
    assert 'both (technical)' in shell('approve', 'risk', '2', '--role', 'technical', who='both').stdout   # another validator may


@pytest.mark.parametrize('args, who, message', [
    (['evaluate', 'risk', '1', 'broken@latest', '--no-cost'], None, 'evaluating on it is refused'),
    (['evaluate', 'nope', '1', 'eval@latest'], None, "no version 1 of model 'nope'"),
    (['evaluate', 'risk', '1', 'ref@nothing'], None, 'ref@nothing'),
    (['approve', 'risk', '9', '--role', 'technical'], 'val', "no version 9 of model 'risk'"),
    (['approve', 'risk', '1', '--approver', 'x', '--role', 'technical'], None, '--approver is retired'),
    (['approve', 'risk', '1', '--role', 'technical'], 'nobody', "cannot act as 'nobody': not in it"),
    (['describe', 'nope', '--owner', 'a', '--tier', 'low', '--use', 'x'], 'dev', "no model 'nope' in the registry"),
    (['gate', 'nope', '1', '--evaluation', 'ev.json'], None, "no version 1 of model 'nope'"),
    (['card', 'risk', '9'], None, "no version 9 of model 'risk'"),
    (['train', 'broken@latest', '--model', 'risk'], None, 'training on it is refused'),
])
def test_bad_requests_are_one_line(shell, args, who, message):
    r = shell(*args, who=who, check=False)
    assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
