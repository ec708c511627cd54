"""Evaluation, gate and champion-challenger of a regression (NannyML's synthetic car prices) and of a multiclass model (its synthetic
credit-card products), each trained here by its spec and evaluated on the analysis period joined with its targets; the numbers are
checked against scikit-learn on the same rows."""
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, log_loss, mean_absolute_error, mean_squared_error,
                             precision_score, r2_score, recall_score, roc_auc_score)

from wildproof.contracts import get_contract, infer_contract, validated
from wildproof.datasets import ingest
from wildproof.features import build_features
from tests.people import PASSWORD, shared_team
from wildproof.principals import login
from wildproof.registry import (Policy, RegistryError, champion_challenger, compare_versions, describe_model, evaluate_version, gate)
from wildproof.settings import load_settings
from wildproof.spec import init_spec
from wildproof.store import Store
from wildproof.training import train

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
if not (DATA / 'car_price' / 'regression_synthetic_reference.csv').is_file() or not (DATA / 'multiclass' / 'mc_reference.csv').is_file():
    pytest.skip(f'the car price and multiclass data sets are not in {DATA}', allow_module_level=True)

TRAIN_ROWS = 20_000   # of the 60,000 reference rows: enough for the model, quicker to train on 2 cores


def load(kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    "Reference and analysis rows (the analysis joined with its targets), without the deployed model's own answers."
    if kind == 'car_price':
        d = DATA / 'car_price'
        ref = pd.read_csv(d / 'regression_synthetic_reference.csv')
        an = pd.read_csv(d / 'regression_synthetic_analysis.csv').merge(pd.read_csv(d / 'regression_synthetic_analysis_targets.csv'), on='id')
        drop = ['y_pred']
    else:
        d = DATA / 'multiclass'
        ref = pd.read_csv(d / 'mc_reference.csv')
        an = pd.read_csv(d / 'mc_analysis.csv').merge(pd.read_csv(d / 'mc_analysis_gt.csv'), on='id')
        drop = ['y_pred'] + [c for c in ref.columns if c.startswith('y_pred_proba_')]
    ts = lambda f: f.drop(columns=drop).assign(timestamp=lambda x: pd.to_datetime(x.timestamp))
    return ts(ref).sample(TRAIN_ROWS, random_state=0).sort_values('id').reset_index(drop=True), ts(an)


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp('tasks') / 'store')


def setup_model(store, kind: str, task: str, **spec_kw):
    "Ingest, contract, spec, two versions (the default pipeline and a weaker one of 20 rounds), inventory entry; the accepted analysis rows."
    ref, an = load(kind)
    snap = ingest(store, f'{kind}_ref', ref)
    infer_contract(store, snap, name=kind, key='id', time_column='timestamp', exclude=['y_true']).register(store)
    spec = init_spec(store, kind, contract=kind, target='y_true', task=task, **spec_kw).register(store)
    v1, v2 = train(store, snap, spec), train(store, snap, spec, params=dict(max_iter=20, early_stopping=False))
    team = load_settings(env={'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(shared_team())})   # a developer describes it
    describe_model(store, kind, owner='ana', intended_use=f'the {kind} example', risk_tier='medium', principal=login('dev', PASSWORD, settings=team), settings=team)
    asnap = ingest(store, f'{kind}_analysis', an)
    rows = validated(store, asnap, get_contract(store, kind)).accepted()   # the rows evaluate_version judges
    answers = lambda t: t.model.predict(build_features(rows, t.features, history=ref)) if task == 'regression' else \
        t.model.predict_proba(build_features(rows, t.features, history=ref))
    return v1, v2, asnap, rows, answers(v1), answers(v2)


def timed(f, *a, **kw):
    t0 = time.perf_counter(); r = f(*a, **kw)
    return r, time.perf_counter() - t0


def test_a_regression_is_evaluated_gated_and_compared(store):
    v1, v2, asnap, rows, p1, p2 = setup_model(store, 'car_price', 'regression')
    y = rows.y_true.to_numpy(float)
    ev, seconds = timed(evaluate_version, store, 'car_price', v1.version, asnap)
    print(f'evaluation of {len(rows):,} rows: {seconds:.1f} s; {ev.summary()}')
    assert len(rows) > 50_000 and seconds < 120
    o = ev.overall
    assert o['rmse'] == pytest.approx(np.sqrt(mean_squared_error(y, p1)), rel=1e-9)
    assert o['mae'] == pytest.approx(mean_absolute_error(y, p1), rel=1e-9)
    assert o['r2'] == pytest.approx(r2_score(y, p1), rel=1e-9)
    assert o['mean_error'] == pytest.approx((p1 - y).mean(), rel=1e-6, abs=1e-6)
    for m in ('rmse', 'mae', 'r2', 'mean_error'): assert o[f'{m}_ci'][0] <= o[m] <= o[f'{m}_ci'][1]
    assert 'roc_auc' not in o and ev.info['fairness'].startswith('not applicable')
    assert sum(b['count'] for b in ev.calibration['bins']) == len(rows)
    assert ev.baseline['available'] and ev.baseline['metric'] == 'rmse' and ev.baseline['margin'] > 0.2   # far better than a ridge regression
    assert ev.baseline['mean']['rmse'] == pytest.approx(np.sqrt(mean_squared_error(y, np.full(len(y), ev.baseline['mean']['value']))), rel=1e-9)
    assert ev.leakage['flagged'] == [] and ev.leakage['metric'] == 'r2'
    last = next(s for s in ev.slices if s['name'] == 'timestamp: last 3 months')
    m = (rows.timestamp >= pd.Timestamp(last['definition']['from'])).to_numpy()
    assert last['rmse'] == pytest.approx(np.sqrt(mean_squared_error(y[m], p1[m])), rel=1e-9)
    fuel = next(s for s in ev.slices if s['name'] == 'fuel = diesel')
    m = (rows.fuel == 'diesel').to_numpy()
    assert fuel['mae'] == pytest.approx(mean_absolute_error(y[m], p1[m]), rel=1e-9)

    verdict = gate(store, 'car_price', v1.version, ev)
    assert [c['metric'] for c in verdict.evidence['checks']] == ['r2', 'baseline_margin', 'relative_mae_gap', 'relative_mean_error_gap',
                                                                 'leaky_features', 'latency_p95_ms']
    assert verdict.passed, verdict.reasons
    strict = load_settings(env={'WILDPROOF_POLICY_MEDIUM_MAX_RMSE': '100'})   # a limit in the target's units, set by the owner
    assert not gate(store, 'car_price', v1.version, ev, settings=strict).passed
    with pytest.raises(RegistryError, match='names roc_auc, which regression models lack'):
        gate(store, 'car_price', v1.version, ev, policy=Policy('medium', [('roc_auc', '>=', .7)]))

    cmp, seconds = timed(compare_versions, store, 'car_price', v1.version, v2.version, asnap)
    print(f'champion-challenger on {len(rows):,} rows: {seconds:.1f} s; gain {cmp["gain"]:+.1f} ({cmp["relative_gain"]:+.1%})')
    rmse1, rmse2 = np.sqrt(mean_squared_error(y, p1)), np.sqrt(mean_squared_error(y, p2))
    assert (cmp['metric'], cmp['lower_is_better']) == ('rmse', True)
    assert cmp['gain'] == pytest.approx(rmse1 - rmse2, rel=1e-9) and cmp['relative_gain'] == pytest.approx((rmse1 - rmse2) / rmse1, rel=1e-9)
    assert cmp['gain_ci'][1] < 0 and cmp['worst_slice'] is not None   # 20 rounds: clearly worse
    cc = champion_challenger(store, 'car_price', v2.version, cmp)
    assert not cc.passed and cc.reasons[0].startswith('✘ RMSE: gain')
    back = champion_challenger(store, 'car_price', v1.version, compare_versions(store, 'car_price', v2.version, v1.version, asnap, measure_cost=False))
    assert back.reasons[0].startswith('✔ RMSE: gain'), back.reasons


def test_a_multiclass_model_is_evaluated_gated_and_compared(store):
    v1, v2, asnap, rows, p1, p2 = setup_model(store, 'multiclass', 'multiclass', classes=['highstreet_card', 'prepaid_card', 'upmarket_card'],
                                              sensitive=['is_customer'])
    classes = list(v1.model.classes_)
    y = rows.y_true.map({c: i for i, c in enumerate(classes)}).to_numpy()
    ev, seconds = timed(evaluate_version, store, 'multiclass', v1.version, asnap)
    print(f'evaluation of {len(rows):,} rows: {seconds:.1f} s; {ev.summary()}')
    assert len(rows) > 50_000 and seconds < 180
    o, pred = ev.overall, p1.argmax(1)
    assert ev.info['classes'] == classes
    assert o['log_loss'] == pytest.approx(log_loss(y, p1), rel=1e-9)
    assert o['macro_roc_auc'] == pytest.approx(roc_auc_score(y, p1, multi_class='ovr', average='macro'), rel=1e-12)
    assert o['weighted_roc_auc'] == pytest.approx(roc_auc_score(y, p1, multi_class='ovr', average='weighted'), rel=1e-12)
    assert o['accuracy'] == pytest.approx(accuracy_score(y, pred), rel=1e-12)
    assert o['macro_f1'] == pytest.approx(f1_score(y, pred, average='macro'), rel=1e-12)
    assert [c['precision'] for c in o['per_class']] == pytest.approx(precision_score(y, pred, average=None).tolist(), rel=1e-12)
    assert [c['recall'] for c in o['per_class']] == pytest.approx(recall_score(y, pred, average=None).tolist(), rel=1e-12)
    assert o['confusion']['matrix'] == confusion_matrix(y, pred).tolist()
    for m in ('log_loss', 'macro_roc_auc', 'accuracy', 'macro_f1'): assert o[f'{m}_ci'][0] <= o[m] <= o[f'{m}_ci'][1]
    f = ev.fairness['is_customer']
    groups = {g['group']: g for g in f['groups']}
    for value, g in groups.items():
        m = (rows.is_customer == value).to_numpy()
        assert g['accuracy'] == pytest.approx(accuracy_score(y[m], pred[m]), rel=1e-12)
        assert list(g['recall'].values()) == pytest.approx(recall_score(y[m], pred[m], average=None).tolist(), rel=1e-12)
    assert f['accuracy_gap'] == pytest.approx(abs(groups[True]['accuracy'] - groups[False]['accuracy']), rel=1e-12)
    assert f['recall_gap'] == max(f['recall_gap_by_class'].values())
    assert ev.baseline['names'] == ['majority_class', 'logistic_regression'] and ev.baseline['metric'] == 'log_loss'
    assert ev.baseline['majority_class']['macro_roc_auc'] == pytest.approx(.5)
    assert ev.leakage['metric'] == 'macro_roc_auc' and ev.leakage['flagged'] == []

    verdict = gate(store, 'multiclass', v1.version, ev)
    assert [c['metric'] for c in verdict.evidence['checks']] == ['macro_roc_auc', 'baseline_margin', 'accuracy_gap', 'recall_gap',
                                                                 'leaky_features', 'latency_p95_ms']
    assert verdict.evidence['checks'][0]['passed'] and verdict.evidence['checks'][0]['value'] == o['macro_roc_auc']

    cmp, seconds = timed(compare_versions, store, 'multiclass', v1.version, v2.version, asnap)
    print(f'champion-challenger on {len(rows):,} rows: {seconds:.1f} s; log loss gain {cmp["gain"]:+.4f} {cmp["gain_ci"]}')
    assert (cmp['metric'], cmp['lower_is_better']) == ('log_loss', True)
    assert cmp['gain'] == pytest.approx(log_loss(y, p1) - log_loss(y, p2), rel=1e-9)
    brier = lambda p: ((p - np.eye(len(classes))[y]) ** 2).sum(1).mean()
    assert cmp['calibration']['brier_difference'] == pytest.approx(brier(p2) - brier(p1), rel=1e-9)
    assert cmp['decisions']['changed_share'] == pytest.approx((p1.argmax(1) != p2.argmax(1)).mean())
    cc = champion_challenger(store, 'multiclass', v2.version, cmp)
    assert cc.reasons[0].startswith(('✔ log loss: gain', '✘ log loss: gain')) and any('most probable class' in r for r in cc.reasons), cc.reasons
