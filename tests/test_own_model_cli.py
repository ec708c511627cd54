"""A data scientist's own data through the whole lifecycle from the shell, with no demo code: issue 18's command list,
run as written on the car-loan data set of a deployed model (NannyML's synthetic car loans)."""
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.people import PASSWORD, as_, team_env
from tests.test_cli import run

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'car_loan'
if not (DATA / 'reference.csv').is_file():
    pytest.skip(f'the car loan data set is not at {DATA}', allow_module_level=True)


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    "The analysis period split in two: the first half with outcomes (evaluation), the second half as a batch to score."
    d = tmp_path_factory.mktemp('own_model')
    a = pd.read_csv(DATA / 'analysis.csv').merge(pd.read_csv(DATA / 'analysis_target.csv'), on='id')
    half = len(a) // 2
    a.iloc[:half].to_csv(d / 'eval.csv', index=False)
    a.iloc[half:].drop(columns=['repaid']).to_csv(d / 'batch.csv', index=False)
    a.iloc[half:][['id', 'repaid']].to_csv(d / 'outcomes.csv', index=False)
    return d


def wp(work, *args, check=True, who=None):
    "A command; acting as `who` of the test team (tests/people.py), its password on standard input, when given."
    r = run('--store', work / 'store', *args, *(as_(who) if who else []), cwd=work, env=team_env(), check=check, input=f'{PASSWORD}\n' if who else None)
    if check: print(f'$ wildproof {" ".join(map(str, args))}\n{r.stdout}')
    return r


def test_the_lifecycle_of_a_model_of_ones_own(work):
    wp(work, 'ingest', 'car_loan_ref', DATA / 'reference.csv')
    wp(work, 'contract', 'infer', 'car_loan_ref@latest', '--name', 'car_loan', '--key', 'id', '--time-column', 'timestamp',
       '--exclude', 'repaid', 'y_pred', 'y_pred_proba')
    out = wp(work, 'model', 'init', 'car_loan', '--contract', 'car_loan', '--target', 'repaid', '--task', 'binary', '--positive', '1').stdout
    assert 'model spec car_loan v1 (binary, target repaid, 7 inputs)' in out
    shown = wp(work, 'model', 'show', 'car_loan').stdout
    assert 'target: repaid' in shown and 'y_pred' not in shown
    assert 'car_loan' in wp(work, 'model', 'list').stdout
    out = wp(work, 'train', 'car_loan_ref@latest', '--model', 'car_loan').stdout
    assert 'car_loan version 1 trained' in out
    wp(work, 'ingest', 'car_loan_eval', work / 'eval.csv')
    out = wp(work, 'evaluate', 'car_loan', '1', 'car_loan_eval@latest', '-o', work / 'ev.json').stdout
    ev = json.loads((work / 'ev.json').read_text())
    assert ev['overall']['roc_auc'] > 0.8, out
    wp(work, 'describe', 'car_loan', '--owner', 'data science', '--use', 'who repays a car loan', '--tier', 'low', who='dev')
    out = wp(work, 'gate', 'car_loan', '1', '--evaluation', work / 'ev.json').stdout
    assert 'gate PASSED' in out and 'not applicable' in out   # no sensitive attributes: fairness is not applicable
    wp(work, 'approve', 'car_loan', '1', '--role', 'technical', who='val')
    wp(work, 'approve', 'car_loan', '1', '--role', 'business', who='biz')
    assert 'is now production' in wp(work, 'promote', 'car_loan', '1', who='ops').stdout
    wp(work, 'ingest', 'car_loan_batch', work / 'batch.csv')
    out = wp(work, 'score', 'car_loan_batch@latest', '--model', 'car_loan').stdout
    assert 'scored 25,000 of 25,000 rows' in out
    scores = pd.read_parquet(out.rsplit('-> ', 1)[1].strip())
    assert set(scores.decision) == {'negative', 'positive'}   # the spec's labels, nobody's approve or decline
    assert 'recorded 25,000 outcomes' in wp(work, 'outcomes', work / 'outcomes.csv').stdout
    out = wp(work, 'monitor', '--model', 'car_loan', '--every', 'week').stdout
    assert 'car_loan' in out and 'nothing due' not in out
    assert 'audit log verified: 25,000 records' in wp(work, 'audit', 'verify').stdout


@pytest.mark.parametrize('args, message', [
    (['train', 'car_loan_ref@latest', '--model', 'nope'], "no model spec 'nope'"),
    (['model', 'init', 'x', '--contract', 'nope', '--target', 'y', '--task', 'binary'], "no contract 'nope'"),
    (['model', 'show', 'nope'], "no model spec 'nope'"),
    (['model', 'register', 'missing.yaml'], 'no model spec file'),
])
def test_user_errors_are_one_line(work, args, message):
    r = wp(work, *args, check=False)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_built_performance_drop_alerts_and_retraining_keeps_the_spec(work):
    """On a target that is not the demo's: the first half of the analysis period served and answered by outcomes that are
    the opposite of the truth. Its weeks' realized accuracy collapses, monitoring opens accuracy investigations, and the
    retraining they trigger trains a challenger with the champion's spec, features and parameters."""
    from wildproof.store import Store
    from wildproof.training import model_version
    early = pd.read_csv(work / 'eval.csv')
    early.drop(columns=['repaid']).to_csv(work / 'early.csv', index=False)
    early.assign(repaid=1 - early.repaid)[['id', 'repaid']].to_csv(work / 'wrong.csv', index=False)
    wp(work, 'ingest', 'car_loan_early', work / 'early.csv')
    assert 'scored 25,000 of 25,000 rows' in wp(work, 'score', 'car_loan_early@latest', '--model', 'car_loan').stdout
    wp(work, 'outcomes', work / 'wrong.csv')
    wp(work, 'monitor', '--model', 'car_loan', '--every', 'week')
    store = Store(work / 'store')
    acc = store.sql('''select window_start, family, arg_max(value, as_of) as value from metrics where model = 'car_loan' and metric = 'accuracy'
                       and window_start < '2019-03-01' group by 1, 2''').pivot(index='window_start', columns='family', values='value')
    assert len(acc) >= 8 and (acc.performance < 0.2).all() and (acc.estimated > 0.9).all(), acc   # realized accuracy collapsed; the estimate (blind to labels) did not
    live = wp(work, 'alerts', '--model', 'car_loan', '--state', 'open').stdout
    assert 'performance.accuracy' in live, live
    out = wp(work, 'retrain', '--model', 'car_loan').stdout
    assert 'realized accuracy below the reference' in out and 'challenger v2 trained' in out, out
    champion, challenger = model_version(store, 'car_loan', 1), model_version(store, 'car_loan', 2)
    assert challenger.spec == champion.spec and challenger.spec.target == 'repaid'
    assert challenger.tags['wildproof.spec'] == champion.tags['wildproof.spec']
    assert challenger.tags['wildproof.params'] == champion.tags['wildproof.params']
    assert challenger.features == champion.features
