"""A regression and a multiclass model, each trained here and carried through the whole lifecycle from the shell (issue 19):
the used-car prices and the credit-card products of NannyML's synthetic data sets of deployed models (Apache-2.0, see each NOTICE).
The analysis period is split in two: the first half, with its outcomes, evaluates; the second half is scored as a batch and
its outcomes arrive afterwards."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error

from tests.people import PASSWORD, as_, team_env
from tests.test_cli import run

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
if not (DATA / 'car_price').is_dir() or not (DATA / 'multiclass').is_dir():
    pytest.skip(f'the car price and multiclass data sets are not in {DATA}', allow_module_level=True)

CASES = {
    'car_price': dict(task='regression', reference='car_price/regression_synthetic_reference.csv',
                      analysis='car_price/regression_synthetic_analysis.csv', targets='car_price/regression_synthetic_analysis_targets.csv',
                      logged=['y_pred'], metric='mae'),
    'card_product': dict(task='multiclass', reference='multiclass/mc_reference.csv', analysis='multiclass/mc_analysis.csv',
                         targets='multiclass/mc_analysis_gt.csv',
                         logged=['y_pred', 'y_pred_proba_prepaid_card', 'y_pred_proba_highstreet_card', 'y_pred_proba_upmarket_card'],
                         metric='log_loss'),
}


def wp(work, *args, check=True, input=None):
    r = run('--store', work / 'store', *args, cwd=work, check=check, env=team_env(), input=input)
    if check: print(f'$ wildproof {" ".join(map(str, args))}\n{r.stdout}')
    return r


@pytest.fixture(scope='module', params=list(CASES))
def case(request, tmp_path_factory):
    name, c = request.param, CASES[request.param]
    d = tmp_path_factory.mktemp(name)
    ref = pd.read_csv(DATA / c['reference'])
    a = pd.read_csv(DATA / c['analysis']).merge(pd.read_csv(DATA / c['targets']), on='id')
    half = len(a) // 2
    ref.drop(columns=c['logged']).to_csv(d / 'reference.csv', index=False)
    a.iloc[:half].drop(columns=c['logged']).to_csv(d / 'eval.csv', index=False)
    a.iloc[half:].drop(columns=c['logged'] + ['y_true']).to_csv(d / 'batch.csv', index=False)
    a.iloc[half:][['id', 'y_true']].to_csv(d / 'outcomes.csv', index=False)
    return name, c, d, a.iloc[half:].reset_index(drop=True)


def test_the_lifecycle_from_the_shell(case):
    name, c, work, later = case
    wp(work, 'ingest', f'{name}_ref', work / 'reference.csv')
    wp(work, 'contract', 'infer', f'{name}_ref@latest', '--name', name, '--key', 'id', '--time-column', 'timestamp', '--exclude', 'y_true')
    out = wp(work, 'model', 'init', name, '--contract', name, '--target', 'y_true', '--task', c['task']).stdout
    assert f'({c["task"]}, target y_true' in out
    assert f'{name} version 1 trained' in wp(work, 'train', f'{name}_ref@latest', '--model', name).stdout
    wp(work, 'ingest', f'{name}_eval', work / 'eval.csv')
    wp(work, 'evaluate', name, '1', f'{name}_eval@latest', '-o', work / 'ev.json')
    ev = json.loads((work / 'ev.json').read_text())
    text = json.dumps(ev)
    assert 'roc_auc' not in text if c['task'] == 'regression' else 'macro_roc_auc' in text
    assert c['metric'] in ev['overall'], ev['overall']
    wp(work, 'describe', name, '--owner', 'data science', '--use', f'the {c["task"]} lesson', '--tier', 'low', *as_('dev'), input=f'{PASSWORD}\n')
    out = wp(work, 'gate', name, '1', '--evaluation', work / 'ev.json').stdout
    assert 'gate PASSED' in out and 'not applicable' in out, out
    wp(work, 'approve', name, '1', '--role', 'technical', *as_('val'), input=f'{PASSWORD}\n')
    wp(work, 'approve', name, '1', '--role', 'business', *as_('biz'), input=f'{PASSWORD}\n')
    assert 'is now production' in wp(work, 'promote', name, '1', *as_('ops'), input=f'{PASSWORD}\n').stdout

    wp(work, 'ingest', f'{name}_batch', work / 'batch.csv')
    out = wp(work, 'score', f'{name}_batch@latest', '--model', name).stdout
    assert f'scored {len(later):,} of {len(later):,} rows' in out
    scores = pd.read_parquet(out.rsplit('-> ', 1)[1].strip()).merge(later[['id', 'y_true']].astype({'id': str}), left_on='entity_key', right_on='id')
    assert len(scores) == len(later)
    if c['task'] == 'regression':
        assert scores.decision.isna().all()                                           # a value, no decision
        assert mean_absolute_error(scores.y_true, scores.score) < 0.5 * np.mean(np.abs(scores.y_true - scores.y_true.mean()))   # far better than the mean
    else:
        assert set(scores.decision) <= set(later.y_true) and accuracy_score(scores.y_true, scores.decision) > 0.5   # 3 classes; the shifted half
    assert f'recorded {len(later):,} outcomes' in wp(work, 'outcomes', work / 'outcomes.csv', '--model', name).stdout
    out = wp(work, 'monitor', '--model', name, '--every', 'week').stdout
    assert name in out and 'nothing due' not in out
    assert f'audit log verified: {len(later):,} records' in wp(work, 'audit', 'verify').stdout


def test_retraining_keeps_the_task_and_the_spec(case):
    "The monitored champion retrained from its served answers and their outcomes: a challenger of the same task and spec, gated and challenged on the task's metrics."
    from wildproof.store import Store
    from wildproof.training import model_version
    name, c, work, _ = case
    out = wp(work, 'retrain', '--model', name, '--force', *as_('ops'), input=PASSWORD + '\n').stdout
    assert 'challenger v2 trained' in out and 'gate ' in out, out
    store = Store(work / 'store')
    champion, challenger = model_version(store, name, 1), model_version(store, name, 2)
    assert challenger.spec == champion.spec and challenger.spec.task == c['task']
    assert challenger.classes == champion.classes


def test_a_model_brought_from_a_notebook(case):
    "A scikit-learn pipeline fitted in a notebook registers like a trained one, and evaluates and scores as the model itself does."
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from wildproof.registry import evaluate_version
    from wildproof.store import Store
    from wildproof.training import model_version, register_model
    name, c, work, later = case
    store = Store(work / 'store')
    spec = model_version(store, name, 1).spec
    ref = pd.read_csv(work / 'reference.csv')
    cats = [col for col in spec.inputs if ref[col].dtype == object or ref[col].dtype == bool]
    nums = [col for col in spec.inputs if col not in cats]
    pre = make_column_transformer((OneHotEncoder(handle_unknown='ignore'), cats), (StandardScaler(), nums))
    est = Ridge() if c['task'] == 'regression' else LogisticRegression(max_iter=300)
    mine = make_pipeline(pre, est).fit(ref[spec.inputs], ref.y_true)
    v = register_model(store, mine, model=name, snapshot=f'{name}_ref@latest').version
    mv = model_version(store, name, v)
    assert mv.tags['wildproof.how'] == 'registered' and mv.spec == spec
    ev = evaluate_version(store, name, v, f'{name}_eval@latest')
    data = pd.read_csv(work / 'eval.csv')
    if c['task'] == 'regression':
        assert abs(ev.overall['mae'] - mean_absolute_error(data.y_true, mine.predict(data[spec.inputs]))) < 1e-6
    else:
        assert mv.classes == [str(x) for x in mine.classes_]
        assert abs(ev.overall['log_loss'] - log_loss(data.y_true, mine.predict_proba(data[spec.inputs]), labels=mine.classes_)) < 1e-6


def test_served_over_rest_as_in_batch(case):
    "`wildproof serve` in a fresh process answers a regression's value, a multiclass model's class and probabilities: those of the batch path, and audited."
    from tests.test_serving import Server
    name, c, work, later = case
    settings = work / 'settings.ini'
    settings.write_text(f'[store]\nroot = {work / "store"}\n', encoding='utf-8')
    batch = pd.read_parquet(sorted((work / 'store' / 'scores' / name).glob('*.parquet'))[0]).set_index('entity_key')
    rows = pd.read_csv(work / 'batch.csv').head(20)
    records = json.loads(rows.to_json(orient='records'))
    with Server(settings, model=name) as srv:
        r = srv.client.post('/predict', json=records)
        assert r.status_code == 200, r.text[:2000]
        answers = r.json()['predictions']
    assert [a['route'] for a in answers] == ['champion'] * 20
    for row, a in zip(rows.itertuples(), answers):
        b = batch.loc[str(row.id)]
        assert abs(a['score'] - b.score) < 1e-9 and a['decision'] == (None if pd.isna(b.decision) else b.decision)
        if c['task'] == 'multiclass':
            assert a['decision'] == max(a['probabilities'], key=a['probabilities'].get)
            assert max(abs(p - b[f'probability_{k}']) for k, p in a['probabilities'].items()) < 1e-9
        else: assert 'probabilities' not in a
    shown = wp(work, 'audit', 'show', answers[0]['request_id']).stdout
    assert ('"probabilities"' in shown) == (c['task'] == 'multiclass'), shown


def test_evaluation_and_card_reports_show_the_task(case):
    "The evaluation report and the model card of a regression show its errors and no ROC AUC; a multiclass model's, its macro figures."
    name, c, work, _ = case
    for kind, args in (('evaluation', [f'model={name}', 'version=1']), ('model_card', [f'model={name}'])):
        out = wp(work, 'report', kind, *args, *as_('ops'), input=PASSWORD + '\n').stdout
        folder = Path(out.strip().splitlines()[-1].split(': ')[-1])
        text = ' '.join(f.read_text(errors='replace') for f in folder.rglob('*') if f.suffix in ('.html', '.md', '.ipynb', '.json'))
        assert text, (kind, folder)
        if c['task'] == 'regression': assert 'ROC AUC' not in text and 'roc_auc' not in text and 'MAE' in text, kind
        else: assert 'macro' in text.lower(), kind
