"""A model that runs elsewhere, monitored from its logged predictions through the command line, on the peer car loan data set
(NannyML's synthetic car loans): import, outcomes, monitoring by chunks of 5,000 rows; every stored figure checked against
scipy, numpy and scikit-learn computed independently on the same chunks."""
import json, os, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.independent import js, psi, shares

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'car_loan'
EXE = Path(sys.executable).parent / 'wildproof'
FEATURES = {'car_value': 'numeric', 'salary_range': 'categorical', 'debt_to_income_ratio': 'numeric', 'loan_length': 'numeric',
            'repaid_loan_on_prev_car': 'categorical', 'size_of_downpayment': 'categorical', 'driver_tenure': 'numeric'}
MODEL, CHUNK = 'car_loan_deployed', 5_000

pytestmark = pytest.mark.skipif(not (DATA / 'analysis_target.csv').is_file(), reason=f'the car loan data set is not at {DATA}')


def run(*args, cwd, store, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    env['MLFLOW_DISABLE_TELEMETRY'] = 'true'
    r = subprocess.run([str(EXE), '--store', str(store), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check: assert r.returncode == 0, r.stdout + r.stderr
    return r


def one_line_error(r, message):
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith('wildproof: error: ') and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr


@pytest.fixture(scope='module')
def monitored(tmp_path_factory):
    "The command line of issue 18, run as a user runs it; returns the store folder, the working folder and the monitoring seconds."
    cwd = tmp_path_factory.mktemp('car_loan_external')
    store = cwd / 'store'
    assert 'ingested as car_loan_ref@' in run('ingest', 'car_loan_ref', DATA / 'reference.csv', cwd=cwd, store=store).stdout
    run('contract', 'infer', 'car_loan_ref@latest', '--name', 'car_loan', '--key', 'id', '--time-column', 'timestamp',
        '--exclude', 'repaid', 'y_pred', 'y_pred_proba', cwd=cwd, store=store)
    # before the model exists: one clear line, not "nothing due"
    one_line_error(run('monitor', '--model', MODEL, '--chunk-rows', CHUNK, cwd=cwd, store=store, check=False), f"no model '{MODEL}'")
    one_line_error(run('predictions', 'import', MODEL, DATA / 'analysis.csv', cwd=cwd, store=store, check=False), f"no model spec '{MODEL}'")
    run('model', 'init', MODEL, '--contract', 'car_loan', '--target', 'repaid', '--task', 'binary', '--external',
        '--prediction', 'y_pred', '--score', 'y_pred_proba', cwd=cwd, store=store)
    one_line_error(run('monitor', '--model', MODEL, '--chunk-rows', CHUNK, cwd=cwd, store=store, check=False), 'no answers to monitor yet')
    out = run('predictions', 'import', MODEL, DATA / 'analysis.csv', cwd=cwd, store=store).stdout
    assert f'imported 50,000 answers of {MODEL} (spec v1)' in out and '0 quarantined' in out, out
    assert 'was imported before' in run('predictions', 'import', MODEL, DATA / 'analysis.csv', cwd=cwd, store=store).stdout
    assert 'recorded 50,000 outcomes' in run('outcomes', DATA / 'analysis_target.csv', cwd=cwd, store=store).stdout
    t0 = time.perf_counter()
    shown = run('monitor', '--model', MODEL, '--chunk-rows', CHUNK, cwd=cwd, store=store).stdout
    seconds = time.perf_counter() - t0
    print(f'\n`wildproof monitor --model {MODEL} --chunk-rows {CHUNK}` took {seconds:.1f} s (the whole process)\n{shown}')
    assert 'nothing due' in run('monitor', '--model', MODEL, '--chunk-rows', CHUNK, cwd=cwd, store=store).stdout   # every outcome is in
    return store, cwd, seconds


@pytest.fixture(scope='module')
def stored(monitored):
    from wildproof.store import Store
    store = Store(monitored[0])
    m = store.sql("select * from metrics where model = $m and granularity = $g order by window_start", dict(m=MODEL, g=f'{CHUNK} rows'))
    starts = sorted(m.window_start.unique())
    m['chunk'] = m.window_start.map({s: k for k, s in enumerate(starts)})
    return store, m


@pytest.fixture(scope='module')
def chunks():
    "The reference and the analysis set cut into the same chunks of 5,000 rows in event-time order, independently of wildproof."
    ref = pd.read_csv(DATA / 'reference.csv')
    ana = pd.read_csv(DATA / 'analysis.csv').merge(pd.read_csv(DATA / 'analysis_target.csv'), on='id')
    ana = ana.assign(t=pd.to_datetime(ana.timestamp)).sort_values(['t', 'id'], kind='stable').reset_index(drop=True)
    return ref, [ana.iloc[k:k + CHUNK] for k in range(0, len(ana) - CHUNK + 1, CHUNK)]


def test_the_shift_after_the_fifth_chunk_is_detected(stored, monitored):
    store, m = stored
    assert m.chunk.nunique() == 10
    psi = m[(m.family == 'data_drift') & (m.metric == 'psi')].pivot(index='chunk', columns='subject', values='value')[list(FEATURES)]
    est = m[(m.family == 'estimated') & (m.metric == 'roc_auc')].set_index('chunk').value
    real = m[(m.family == 'performance') & (m.metric == 'roc_auc')].set_index('chunk').value
    table = psi.round(4).assign(estimated_roc_auc=est.round(4), realized_roc_auc=real.round(4))
    with pd.option_context('display.width', 250, 'display.max_columns', 20):
        print(f'\nPSI of the seven features and ROC AUC per chunk of {CHUNK:,} rows ({MODEL}, monitored in {monitored[2]:.1f} s):\n{table}')
    severe = m[m.status.isin(['alert', 'investigate'])]
    assert not len(severe[severe.chunk < 5]), severe[severe.chunk < 5][['chunk', 'family', 'metric', 'subject', 'value']]
    drift = severe[severe.family == 'data_drift']
    assert set(drift.chunk) == set(range(5, 10)), drift[['chunk', 'subject', 'value']]      # every chunk of the second half
    opened = store.sql('select rule, subject, window_start from alerts where model = $m', dict(m=MODEL))
    assert len(opened) and (pd.to_datetime(opened.window_start, utc=True) >= m[m.chunk == 5].window_start.iloc[0]).all()
    assert (est.iloc[5:] < est.iloc[:5].min() - 0.005).all()   # the estimate sees the loss without a label


def test_stored_values_match_scipy_numpy_and_sklearn(stored, chunks):
    from scipy.stats import ks_2samp
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score
    _, m = stored
    ref, parts = chunks
    assert len(parts) == m.chunk.nunique() == 10
    val = {(r.chunk, r.family, r.metric, r.subject): r.value for r in m.itertuples()}
    est_detail = json.loads(m[(m.family == 'estimated') & (m.metric == 'roc_auc')].detail_json.iloc[0])
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds='clip').fit(ref.y_pred_proba, ref.repaid) if est_detail['calibrated'] else None
    assert est_detail['calibrated']   # the car-loan scores are rounded and not calibrated: auto calibrates them
    for k, cur in enumerate(parts):
        assert val[(k, 'service', 'volume', '')] == CHUNK
        assert m[m.chunk == k].window_start.iloc[0] == cur.t.iloc[0].tz_localize('UTC')
        for col, kind in {**FEATURES, 'y_pred_proba': 'numeric'}.items():
            fam, subject = ('prediction_drift', 'score') if col == 'y_pred_proba' else ('data_drift', col)
            r, c = shares(ref[col], cur[col], kind)
            assert abs(val[(k, fam, 'psi', subject)] - psi(r, c)) < 1e-9, (k, col)
            assert abs(val[(k, fam, 'js', subject)] - js(r, c)) < 1e-9, (k, col)
            if kind == 'numeric':
                ks = ks_2samp(ref[col].dropna(), cur[col].dropna(), method='asymp')
                assert abs(val[(k, fam, 'ks', subject)] - ks.statistic) < 1e-12, (k, col)
                assert abs(val[(k, fam, 'ks_p_value', subject)] - ks.pvalue) < 1e-6, (k, col)
        s, y = cur.y_pred_proba.to_numpy(float), cur.repaid.to_numpy(int)
        assert abs(val[(k, 'performance', 'roc_auc', '')] - roc_auc_score(y, s)) < 1e-12
        assert abs(val[(k, 'performance', 'accuracy', '')] - np.mean((s >= 0.5) == (y == 1))) < 1e-12
        p = iso.predict(s) if iso is not None else s
        expected = roc_auc_score(np.r_[np.ones(len(s)), np.zeros(len(s))], np.r_[s, s], sample_weight=np.r_[p, 1 - p])
        assert abs(val[(k, 'estimated', 'roc_auc', '')] - expected) < 1e-9, k
        assert abs(val[(k, 'estimated', 'accuracy', '')] - np.mean(np.where(s >= 0.5, p, 1 - p))) < 1e-9, k
        assert abs(val[(k, 'business', 'outcome_rate', '')] - y.mean()) < 1e-12
        assert abs(val[(k, 'business', 'decision_rate', 'positive')] - np.mean(s >= 0.5)) < 1e-12


def test_thresholds_calibrated_on_reference_chunks(monitored):
    "The same shift, judged by thresholds from the reference's own chunks of 5,000 rows (mean + 3 sd), in a copy of the store."
    import shutil
    from wildproof.monitoring import external_reference, monitor, reference_thresholds
    from wildproof.settings import load_settings
    from wildproof.store import Store
    root = monitored[1] / 'calibrated'
    shutil.copytree(monitored[0], root)
    store = Store(root)
    st = load_settings(env={'WILDPROOF_MONITORING_THRESHOLDS': 'reference_chunks'})
    s = monitor(store, MODEL, chunk_rows=4_999, settings=st, progress=False)   # chunks of another size: windows of their own
    assert len(s) == 10
    flagged = s.drifting != ''
    print(f'\nreference_chunks thresholds (k = {st.monitoring.threshold_k:g}), chunks of 4,999 rows:\n'
          + s[['chunk', 'window_start', 'drifting', 'estimated_roc_auc', 'opened']].round(4).to_string(index=False))
    assert flagged.iloc[5:].all(), s.drifting
    ref = external_reference(store, MODEL, settings=st)
    thr = reference_thresholds(ref, 4_999, k=st.monitoring.threshold_k)
    assert thr[('car_value', 'psi')]['chunks'] == 10 and thr[('estimated', 'roc_auc')]['threshold'] < thr[('estimated', 'roc_auc')]['mean']
