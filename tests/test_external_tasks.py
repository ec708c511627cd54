"""A regression and a multiclass model that run elsewhere, monitored from their logged predictions through the command line, on
the peer data sets of issue 19 (NannyML's synthetic car prices and credit-card products): import, outcomes, monitoring by
chunks of 6,000 rows. Every stored figure is checked against scipy, numpy and scikit-learn computed independently on the same
chunks, and the shift of the second half of each analysis period is detected."""
import json, os, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.independent import js, psi, shares

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
EXE = Path(sys.executable).parent / 'wildproof'
CHUNK = 6_000
PRICE = dict(model='car_price_deployed', folder='car_price', reference='regression_synthetic_reference.csv',
             analysis='regression_synthetic_analysis.csv', targets='regression_synthetic_analysis_targets.csv', target='y_true',
             features={'car_age': 'numeric', 'km_driven': 'numeric', 'price_new': 'numeric', 'accident_count': 'numeric',
                       'door_count': 'numeric', 'fuel': 'categorical', 'transmission': 'categorical'})
CLASSES = ['prepaid_card', 'highstreet_card', 'upmarket_card']
CARDS = dict(model='card_product_deployed', folder='multiclass', reference='mc_reference.csv', analysis='mc_analysis.csv',
             targets='mc_analysis_gt.csv', target='y_true',
             features={'acq_channel': 'categorical', 'app_behavioral_score': 'numeric', 'requested_credit_limit': 'numeric',
                       'app_channel': 'categorical', 'credit_bureau_score': 'numeric', 'stated_income': 'numeric', 'is_customer': 'categorical'})
PROBA = {c: f'y_pred_proba_{c}' for c in CLASSES}

pytestmark = pytest.mark.skipif(not all((DATA / d['folder'] / d['targets']).is_file() for d in (PRICE, CARDS)),
                                reason=f'the car price and multiclass data sets are not at {DATA}')


def run(*args, cwd, store, check=True, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    e.update(MLFLOW_DISABLE_TELEMETRY='true', **(env or {}))
    r = subprocess.run([str(EXE), '--store', str(store), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True, timeout=900)
    if check: assert r.returncode == 0, r.stdout + r.stderr
    return r


def monitor_from_cli(tmp_path_factory, d: dict, *, task: str, exclude: list[str], init: tuple = ()):
    "The command line as a user runs it: ingest, contract, model spec, import, outcomes, monitor by chunks of 6,000 rows."
    cwd = tmp_path_factory.mktemp(d['model'])
    store, folder, m = cwd / 'store', DATA / d['folder'], d['model']
    run('ingest', f'{m}_ref', folder / d['reference'], cwd=cwd, store=store)
    run('contract', 'infer', f'{m}_ref@latest', '--name', m, '--key', 'id', '--time-column', 'timestamp', '--exclude', *exclude, cwd=cwd, store=store)
    run('model', 'init', m, '--contract', m, '--target', d['target'], '--task', task, '--external', '--prediction', 'y_pred', *init, cwd=cwd, store=store)
    out = run('predictions', 'import', m, folder / d['analysis'], cwd=cwd, store=store).stdout
    assert f'imported 60,000 answers of {m}' in out and '0 quarantined' in out and 'without a usable score' not in out, out
    assert 'recorded 60,000 outcomes' in run('outcomes', folder / d['targets'], cwd=cwd, store=store).stdout
    t0 = time.perf_counter()
    shown = run('monitor', '--model', m, '--chunk-rows', CHUNK, cwd=cwd, store=store).stdout
    seconds = time.perf_counter() - t0
    print(f'\n`wildproof monitor --model {m} --chunk-rows {CHUNK}` took {seconds:.1f} s (the whole process)\n{shown}')
    assert 'nothing due' in run('monitor', '--model', m, '--chunk-rows', CHUNK, cwd=cwd, store=store).stdout   # every outcome is in
    from wildproof.store import Store
    s = Store(store)
    met = s.sql('select * from metrics where model = $m and granularity = $g order by window_start', dict(m=m, g=f'{CHUNK} rows'))
    met['chunk'] = met.window_start.map({t: k for k, t in enumerate(sorted(met.window_start.unique()))})
    return s, met, cwd


def chunks(d: dict):
    "The reference, and the analysis set with its targets cut into the same chunks of 6,000 rows in event-time order, independently of wildproof."
    folder = DATA / d['folder']
    ref = pd.read_csv(folder / d['reference'])
    ana = pd.read_csv(folder / d['analysis']).merge(pd.read_csv(folder / d['targets']), on='id')
    ana = ana.assign(t=pd.to_datetime(ana.timestamp)).sort_values(['t', 'id'], kind='stable').reset_index(drop=True)
    return ref, [ana.iloc[k:k + CHUNK] for k in range(0, len(ana) - CHUNK + 1, CHUNK)]


@pytest.fixture(scope='module')
def price(tmp_path_factory):
    return monitor_from_cli(tmp_path_factory, PRICE, task='regression', exclude=['y_true', 'y_pred'])


@pytest.fixture(scope='module')
def cards(tmp_path_factory):
    return monitor_from_cli(tmp_path_factory, CARDS, task='multiclass', exclude=['y_true', 'y_pred', *PROBA.values()],
                            init=('--scores', *[f'{c}={col}' for c, col in PROBA.items()]))


def values(met) -> dict:
    return {(r.chunk, r.family, r.metric, r.subject): r.value for r in met.itertuples()}


def table(met, columns: dict) -> pd.DataFrame:
    "Per chunk: the chosen (family, metric, subject) figures, named."
    v = values(met)
    return pd.DataFrame({name: [v.get((k, *key)) for k in range(met.chunk.nunique())] for name, key in columns.items()})


def show(title: str, t: pd.DataFrame) -> None:
    with pd.option_context('display.width', 250, 'display.max_columns', 40):
        print(f'\n{title}\n{t.round(4).to_string()}')


def check_drift(val: dict, k: int, ref: pd.DataFrame, cur: pd.DataFrame, columns: dict, family: str) -> None:
    "PSI, Jensen-Shannon and (numeric) KS of each of `columns` ({stored subject: (column, kind)}) in chunk `k`, against scipy."
    from scipy.stats import ks_2samp
    for subject, (col, kind) in columns.items():
        r, c = shares(ref[col], cur[col], kind)
        assert abs(val[(k, family, 'psi', subject)] - psi(r, c)) < 1e-9, (k, subject)
        assert abs(val[(k, family, 'js', subject)] - js(r, c)) < 1e-9, (k, subject)
        if kind == 'numeric':
            ks = ks_2samp(ref[col].dropna(), cur[col].dropna(), method='asymp')
            assert abs(val[(k, family, 'ks', subject)] - ks.statistic) < 1e-12, (k, subject)


# ---------------------------------------------------------------- regression

def test_regression_values_match_independent_computations(price):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    _, met, _ = price
    ref, parts = chunks(PRICE)
    assert len(parts) == met.chunk.nunique() == 10
    val = values(met)
    ref_sorted = ref.assign(t=pd.to_datetime(ref.timestamp)).sort_values('t', kind='stable')
    e = (ref_sorted.y_pred - ref_sorted.y_true).to_numpy(float)   # the reference's errors in time order: its chunks give the sampling error
    mae_se = np.abs(e[:len(e) // CHUNK * CHUNK]).reshape(-1, CHUNK).mean(1).std(ddof=1)
    rmse_se = np.sqrt((e[:len(e) // CHUNK * CHUNK] ** 2).reshape(-1, CHUNK).mean(1)).std(ddof=1)
    est = met[(met.family == 'estimated') & (met.metric.isin(['mae', 'rmse']))]
    for r in est.itertuples():
        d = json.loads(r.detail_json)
        assert abs(d['sampling_error'] - (mae_se if r.metric == 'mae' else rmse_se)) < 1e-9
    for k, cur in enumerate(parts):
        assert val[(k, 'service', 'volume', '')] == CHUNK
        check_drift(val, k, ref, cur, {c: (c, kind) for c, kind in PRICE['features'].items()}, 'data_drift')
        check_drift(val, k, ref, cur, {'score': ('y_pred', 'numeric')}, 'prediction_drift')
        y, p = cur.y_true.to_numpy(float), cur.y_pred.to_numpy(float)
        assert abs(val[(k, 'performance', 'mae', '')] - mean_absolute_error(y, p)) < 1e-9
        assert abs(val[(k, 'performance', 'rmse', '')] - np.sqrt(mean_squared_error(y, p))) < 1e-9
        assert abs(val[(k, 'performance', 'r2', '')] - r2_score(y, p)) < 1e-12
        assert abs(val[(k, 'performance', 'mean_error', '')] - np.mean(p - y)) < 1e-9
        assert abs(val[(k, 'business', 'outcome_mean', '')] - y.mean()) < 1e-9
        # the estimate, without a label, within four sampling errors (or 5 %) of the realized figure
        for m, se in (('mae', mae_se), ('rmse', rmse_se)):
            real, guess = val[(k, 'performance', m, '')], val[(k, 'estimated', m, '')]
            assert abs(guess - real) < max(4 * se, 0.05 * real), (k, m, guess, real, se)


def test_regression_shift_of_the_second_half_is_detected(price):
    store, met, _ = price
    t = table(met, {**{f'psi {c}': ('data_drift', 'psi', c) for c in PRICE['features']}, 'psi y_pred': ('prediction_drift', 'psi', 'score'),
                    'est MAE': ('estimated', 'mae', ''), 'MAE': ('performance', 'mae', ''), 'est RMSE': ('estimated', 'rmse', ''),
                    'RMSE': ('performance', 'rmse', ''), 'R2': ('performance', 'r2', ''), 'mean error': ('performance', 'mean_error', '')})
    show(f'{PRICE["model"]}: drift of every feature and of the predicted price, estimated and realized errors per chunk of {CHUNK:,} rows', t)
    first, second = t.iloc[:5], t.iloc[5:]
    severe = met[met.status.isin(['alert', 'investigate'])]
    assert not len(severe[severe.chunk < 5]), severe[severe.chunk < 5][['chunk', 'family', 'metric', 'subject', 'value']]
    pred = met[(met.family == 'prediction_drift') & (met.metric == 'psi') & (met.subject == 'score')].set_index('chunk')
    assert (pred.status.loc[5:] == 'alert').all() and (pred.status.loc[:4] == 'stable').all(), pred.status
    feats = met[(met.family == 'data_drift') & (met.metric == 'psi')]
    assert (feats[feats.chunk >= 5].groupby('chunk').status.apply(lambda s: (s != 'stable').any())).all()   # features on watch in every later chunk
    assert (feats[feats.chunk < 5].status == 'stable').all()
    # the errors change in the second half, and the estimate sees it without a label
    assert second['MAE'].max() < first['MAE'].min() * 0.9 and second['est MAE'].max() < first['est MAE'].min() * 0.9
    opened = store.sql('select rule, subject, window_start from alerts where model = $m', dict(m=PRICE['model']))
    assert len(opened) and (pd.to_datetime(opened.window_start, utc=True) >= met[met.chunk == 5].window_start.iloc[0]).all()


def test_regression_thresholds_from_reference_chunks(price):
    "With thresholds calibrated on the reference's own chunks (mean ± 3 sd), the feature drift of the second half alerts too."
    import shutil
    root = price[2] / 'calibrated'
    shutil.copytree(price[0].root, root)
    out = run('monitor', '--model', PRICE['model'], '--chunk-rows', CHUNK - 1, cwd=price[2], store=root,
              env={'WILDPROOF_MONITORING_THRESHOLDS': 'reference_chunks'}).stdout
    print(f'\nreference_chunks thresholds, chunks of {CHUNK - 1:,} rows:\n{out}')
    from wildproof.store import Store
    met = Store(root).sql('select * from metrics where model = $m and granularity = $g', dict(m=PRICE['model'], g=f'{CHUNK - 1} rows'))
    met['chunk'] = met.window_start.map({t: k for k, t in enumerate(sorted(met.window_start.unique()))})
    drift = met[(met.family == 'data_drift') & (met.status == 'alert')].groupby('chunk').subject.nunique().reindex(range(10), fill_value=0)
    # every feature alerts in every chunk of the second half; the first half's chunks, closer to the reference than its own chunks
    # are to each other by chance, raise a few false alarms on these data (mean + 3 sd of 10 tiny PSIs is a tight threshold)
    assert (drift.loc[5:] == len(PRICE['features'])).all() and (drift.loc[:4] <= 3).all(), drift
    est = met[(met.family == 'estimated') & (met.metric == 'mae')]
    d = json.loads(est.detail_json.iloc[0])
    assert d['chunks'] == 10 and d['lower_is_better'] and d['threshold'] > d['mean']


# ---------------------------------------------------------------- multiclass

def test_multiclass_values_match_independent_computations(cards):
    from sklearn.metrics import f1_score, log_loss, precision_score, recall_score, roc_auc_score
    _, met, _ = cards
    ref, parts = chunks(CARDS)
    assert len(parts) == met.chunk.nunique() == 10
    val = values(met)
    detail = json.loads(met[(met.family == 'estimated') & (met.metric == 'accuracy')].detail_json.iloc[0])
    assert detail['calibrated'] is False   # the logged probabilities are calibrated: they are used as they are
    probability = {f'probability:{c}': (PROBA[c], 'numeric') for c in CLASSES}
    for k, cur in enumerate(parts):
        check_drift(val, k, ref, cur, {c: (c, kind) for c, kind in CARDS['features'].items()}, 'data_drift')
        check_drift(val, k, ref, cur, {'predicted_class': ('y_pred', 'categorical'), **probability}, 'prediction_drift')
        P = cur[[PROBA[c] for c in CLASSES]].to_numpy(float)
        P = P / P.sum(1, keepdims=True)
        order = np.argsort(CLASSES)   # sklearn's multiclass ROC AUC wants the labels sorted
        y, d = cur.y_true.to_numpy(str), cur.y_pred.to_numpy(str)
        assert abs(val[(k, 'performance', 'accuracy', '')] - np.mean(y == d)) < 1e-12
        assert abs(val[(k, 'performance', 'macro_f1', '')] - f1_score(y, d, labels=CLASSES, average='macro')) < 1e-12
        assert abs(val[(k, 'performance', 'macro_roc_auc', '')] - roc_auc_score(y, P[:, order], labels=sorted(CLASSES), multi_class='ovr', average='macro')) < 1e-9
        assert abs(val[(k, 'performance', 'log_loss', '')] - log_loss(y, P[:, order], labels=sorted(CLASSES))) < 1e-9
        for c in CLASSES:
            assert abs(val[(k, 'business', 'decision_rate', c)] - np.mean(d == c)) < 1e-12
            assert abs(val[(k, 'business', 'outcome_rate', c)] - np.mean(y == c)) < 1e-12
        # estimated without labels: each row is class c with weight P(c) and not with weight 1 - P(c) (sklearn's weighted metrics)
        hit = P[np.arange(len(P)), [CLASSES.index(x) for x in d]]
        assert abs(val[(k, 'estimated', 'accuracy', '')] - hit.mean()) < 1e-9
        f1s, aucs = [], []
        for i, c in enumerate(CLASSES):
            truth, answered, w = np.r_[np.ones(len(P)), np.zeros(len(P))], np.r_[d == c, d == c], np.r_[P[:, i], 1 - P[:, i]]
            for m, fn in (('precision', precision_score), ('recall', recall_score), ('f1', f1_score)):
                assert abs(val[(k, 'estimated', m, c)] - fn(truth, answered, sample_weight=w)) < 1e-9, (k, c, m)
            f1s.append(f1_score(truth, answered, sample_weight=w))
            aucs.append(roc_auc_score(truth, np.r_[P[:, i], P[:, i]], sample_weight=w))
            assert abs(val[(k, 'estimated', 'roc_auc', c)] - aucs[-1]) < 1e-9, (k, c)
        assert abs(val[(k, 'estimated', 'macro_f1', '')] - np.mean(f1s)) < 1e-9
        assert abs(val[(k, 'estimated', 'macro_roc_auc', '')] - np.mean(aucs)) < 1e-9


def test_multiclass_shift_of_the_second_half_is_detected(cards):
    store, met, _ = cards
    cols = {**{f'psi {c}': ('data_drift', 'psi', c) for c in CARDS['features']}, 'psi class': ('prediction_drift', 'psi', 'predicted_class'),
            **{f'psi p({c.split("_")[0]})': ('prediction_drift', 'psi', f'probability:{c}') for c in CLASSES}}
    for m in ('accuracy', 'macro_f1', 'macro_roc_auc'): cols.update({f'est {m}': ('estimated', m, ''), m: ('performance', m, '')})
    cols['log_loss'] = ('performance', 'log_loss', '')
    t = table(met, cols)
    show(f'{CARDS["model"]}: drift of every feature, of the class mix and of each class probability; estimated and realized performance '
         f'per chunk of {CHUNK:,} rows', t)
    severe = met[met.status.isin(['alert', 'investigate'])]
    assert not len(severe[severe.chunk < 5]), severe[severe.chunk < 5][['chunk', 'family', 'metric', 'subject', 'value']]
    drift = severe[severe.family == 'data_drift']
    assert set(drift.chunk) == set(range(5, 10)), drift[['chunk', 'subject', 'value']]
    for fam, metric in (('estimated', 'accuracy'), ('estimated', 'macro_f1'), ('performance', 'accuracy'), ('performance', 'macro_f1')):
        s = met[(met.family == fam) & (met.metric == metric) & (met.subject == '')].set_index('chunk').status
        assert (s.loc[5:] != 'ok').all() and (s.loc[:4] == 'ok').all(), (fam, metric, s)
    first, second = t.iloc[:5], t.iloc[5:]
    assert second['est accuracy'].max() < first['est accuracy'].min() - 0.05   # the estimate sees the loss without a label
    assert second['accuracy'].max() < first['accuracy'].min() - 0.05
    opened = store.sql('select rule, subject, window_start from alerts where model = $m', dict(m=CARDS['model']))
    assert {'estimated.accuracy', 'performance.accuracy', 'data_drift.psi'} <= set(opened.rule)


@pytest.mark.parametrize('which', ['price', 'cards'])
def test_drill_down_shows_the_task(which, request):
    "The Evidently drill-down of a month of the second half: data and prediction drift, and the task's quality (regression or multiclass)."
    s, met, cwd = request.getfixturevalue(which)
    m = (PRICE if which == 'price' else CARDS)['model']
    last = met.window_start.max()
    out = run('drill-down', m, f'{last:%Y-%m-%d}', '--every', 'month', cwd=cwd, store=s.root).stdout.strip()
    html = Path(out.rsplit(' ', 1)[-1]).read_text(errors='replace')
    assert len(html) > 100_000
    assert ('Mean Absolute Error' in html or 'MAE' in html) if which == 'price' else ('Accuracy' in html or 'accuracy' in html)
