"""Monitoring on Apache Spark (`monitor(..., engine='spark')`, decision 0018) against the DuckDB path, on real stores: one store
is monitored on DuckDB, a copy of it (made before monitoring) on a real local[2] Spark session; the metric rows written must be
the same (counts exact, floats to 1e-9, the same statuses and details) and the same alerts must open.

Worlds: the credit demo (a trained champion, weekly batches scored, delayed outcomes; monthly windows) and the car-loan data
set as the prediction log of a model that runs elsewhere (chunks of rows). One Spark session serves the whole process
(`wildproof.engine.spark_session`); the module is skipped when pyspark, sqlglot or Java is missing.
"""
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip('pyspark', reason='the Spark engine needs pyspark: pip install "wildproof[spark]"')
pytest.importorskip('sqlglot', reason='the Spark engine needs sqlglot: pip install "wildproof[spark]"')
if not shutil.which('java'): pytest.skip('the Spark engine needs Java 17 (java on the PATH)', allow_module_level=True)

from wildproof.engine import SparkEngine
from wildproof.settings import load_settings
from wildproof.store import Store

CAR_LOAN = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'car_loan'


def settings_for(root: Path):
    "Settings of the store at `root` only (no settings file of the work tree, no WILDPROOF_ variables)."
    f = root.parent / f'{root.name}.ini'
    f.write_text(f'[store]\nroot = {root}\n', encoding='utf-8')
    return load_settings(f, env={})


def both(tmp: Path, build) -> tuple:
    "A store built by `build(store, settings)`, and a copy of it: (DuckDB's store, settings), (Spark's store, settings)."
    a = tmp / 'duck' / 'store'
    a.parent.mkdir(parents=True)
    st = settings_for(a)
    build(Store(a), st)
    b = tmp / 'spark' / 'store'
    shutil.copytree(a, b, ignore=shutil.ignore_patterns('*.lock'))
    return (Store(a), st), (Store(b), settings_for(b))


def metric_rows(store: Store, model: str) -> pd.DataFrame:
    m = store.sql('select * from metrics where model = $m', dict(m=model))
    return m.sort_values(['granularity', 'window_start', 'family', 'metric', 'subject']).reset_index(drop=True)


def assert_same_metrics(a: pd.DataFrame, b: pd.DataFrame):
    "The same rows: keys and statuses equal, values and the details' numbers to 1e-9 (counts exact)."
    keys = ['model', 'version', 'granularity', 'window_start', 'window_end', 'family', 'metric', 'subject', 'status']
    assert len(a) == len(b) and len(a)
    pd.testing.assert_frame_equal(a[keys].astype(str), b[keys].astype(str))
    x, y = a.value.to_numpy(float), b.value.to_numpy(float)
    assert (np.isnan(x) == np.isnan(y)).all()
    bad = ~np.isnan(x) & (np.abs(x - y) > 1e-9)
    assert not bad.any(), a[bad][keys[3:8] + ['value']].assign(spark=y[bad])
    for i, (p, q) in enumerate(zip(a.detail_json, b.detail_json)):
        if p is None or q is None: assert p is None and q is None, (a.iloc[i][keys].tolist(), p, q); continue
        p, q = json.loads(p), json.loads(q)
        assert p.keys() == q.keys(), (a.iloc[i][keys].tolist(), p, q)
        for k in p:
            u, v = p[k], q[k]
            if isinstance(u, float) and isinstance(v, (int, float)):
                assert (math.isnan(u) and math.isnan(v)) or abs(u - v) <= 1e-9, (a.iloc[i][keys].tolist(), k, u, v)
            else: assert u == v, (a.iloc[i][keys].tolist(), k, u, v)


def assert_same_alerts(a: Store, b: Store, model: str):
    cols = ['model', 'rule', 'subject', 'severity', 'state', 'window_start', 'value', 'threshold', 'message']
    x = a.sql('select * from alerts where model = $m', dict(m=model))[cols].sort_values(cols[:6]).reset_index(drop=True)
    y = b.sql('select * from alerts where model = $m', dict(m=model))[cols].sort_values(cols[:6]).reset_index(drop=True)
    pd.testing.assert_frame_equal(x.drop(columns=['value', 'threshold']), y.drop(columns=['value', 'threshold']))
    for c in ('value', 'threshold'):
        np.testing.assert_allclose(x[c].to_numpy(float), y[c].to_numpy(float), rtol=0, atol=1e-9)
    return x


@pytest.fixture(scope='module')
def spark():
    return SparkEngine(master='local[2]')


# ---------------------------------------------------------------- the credit demo world

def credit_world(store: Store, st):
    "The notebook's lesson, smaller: a champion trained on six months, weekly batches through the gate and scored, outcomes as they became known."
    from wildproof.audit import record_outcomes
    from wildproof.contracts import infer_contract, validate
    from wildproof.datasets import ingest
    from wildproof.examples.credit import world
    from wildproof.examples.credit.features import credit_spec
    from wildproof.monitoring import reference
    from wildproof.registry import _move
    from wildproof.scoring import ScoringCore, score_snapshot
    from wildproof.training import mlflow_release, train
    df = world.generate_world(rows=12_000, seed=7)
    ref, rest = world.split_reference(df, 6)
    labels = [world.target, world.outcome_time_column]
    snap = ingest(store, 'loans_reference', ref)
    contract = infer_contract(store, snap, name='loan_applications', key=world.key, time_column=world.time_column, exclude=labels).register(store)
    v1 = train(store, snap, credit_spec(store, contract.name), settings=st)
    _move(store, 'credit_risk', 'production', v1.version, 'promote', 'test')
    core = ScoringCore(store, model='credit_risk', settings=st, source='batch')
    for _, batch in world.batches(rest.drop(columns=labels), 'W'):
        s = ingest(store, 'loan_applications', batch)
        if validate(store, s, contract, settings=st).ok: score_snapshot(store, s, core=core, progress=False)
    core.close()
    record_outcomes(store, pd.DataFrame({'entity_key': rest[world.key].astype(str), 'outcome': rest[world.target],
                                         'observed_at': rest[world.outcome_time_column].dt.tz_localize('UTC')}))
    reference(store, 'credit_risk', v1.version, settings=st)   # scored once, kept in the store: the copy needs no model
    mlflow_release(store)


MONTHS = ('2024-10-15', '2025-05-15')   # the incident month (a batch rejected by the gate) and a month of the recession (drift)


@pytest.fixture(scope='module')
def credit(tmp_path_factory, spark):
    from wildproof.monitoring import monitor
    (a, sa), (b, sb) = both(tmp_path_factory.mktemp('spark_credit'), credit_world)
    kw = dict(as_of='2026-07-01', granularity='month', progress=False)
    seconds = {}
    for store, st, kind in ((a, sa, 'duckdb'), (b, sb, 'spark')):
        t0 = time.perf_counter()
        out = pd.concat([monitor(store, 'credit_risk', window=w, settings=st, engine=kind, **kw) for w in MONTHS], ignore_index=True)
        seconds[kind] = time.perf_counter() - t0
    print(f'\ncredit demo, {len(out)} monthly windows: DuckDB {seconds["duckdb"]:.1f} s, Spark {seconds["spark"]:.1f} s')
    return a, b, out


def test_credit_world_same_metrics_and_alerts(credit):
    a, b, summary = credit
    assert len(summary) == len(MONTHS)
    x, y = metric_rows(a, 'credit_risk'), metric_rows(b, 'credit_risk')
    assert set(x.family) >= {'service', 'gate', 'data_drift', 'prediction_drift', 'business', 'performance', 'estimated'}
    assert_same_metrics(x, y)
    opened = assert_same_alerts(a, b, 'credit_risk')
    assert len(opened) and (opened.rule == 'gate.quarantine_share').any()


# ---------------------------------------------------------------- the car-loan data: a model that runs elsewhere

def car_loan_world(store: Store, st, rows: int = 10_000):
    "The car-loan reference, a contract, an external model's spec, its first `rows` logged predictions imported, their outcomes."
    from wildproof.audit import record_outcomes
    from wildproof.contracts import infer_contract
    from wildproof.datasets import ingest
    from wildproof.external import import_predictions, outcome_records
    from wildproof.spec import init_spec
    snap = ingest(store, 'car_loan_ref', CAR_LOAN / 'reference.csv')
    infer_contract(store, snap, name='car_loan', key='id', time_column='timestamp', exclude=['repaid', 'y_pred', 'y_pred_proba'], settings=st).register(store)
    init_spec(store, 'car_loan_deployed', contract='car_loan', target='repaid', task='binary', external=True,
              prediction='y_pred', score='y_pred_proba').register(store)
    ana = pd.read_csv(CAR_LOAN / 'analysis.csv', parse_dates=['timestamp']).sort_values('timestamp', kind='stable').head(rows)
    import_predictions(store, 'car_loan_deployed', ana, settings=st)
    y = pd.read_csv(CAR_LOAN / 'analysis_target.csv')
    record_outcomes(store, outcome_records(store, y[y.id.isin(ana.id)], model='car_loan_deployed')[0])


@pytest.fixture(scope='module')
def car_loan(tmp_path_factory, spark):
    if not (CAR_LOAN / 'analysis_target.csv').is_file(): pytest.skip(f'the car loan data set is not at {CAR_LOAN}')
    from wildproof.monitoring import monitor
    (a, sa), (b, sb) = both(tmp_path_factory.mktemp('spark_car_loan'), car_loan_world)
    seconds = {}
    for store, st, kind in ((a, sa, 'duckdb'), (b, sb, 'spark')):
        t0 = time.perf_counter()
        out = monitor(store, 'car_loan_deployed', chunk_rows=5_000, settings=st, engine=kind, progress=False)
        seconds[kind] = time.perf_counter() - t0
    print(f'\ncar loan, {len(out)} chunks of 5,000 answers: DuckDB {seconds["duckdb"]:.1f} s, Spark {seconds["spark"]:.1f} s')
    return a, b, out


def test_car_loan_chunks_same_metrics_and_alerts(car_loan):
    a, b, summary = car_loan
    assert len(summary) == 2
    x, y = metric_rows(a, 'car_loan_deployed'), metric_rows(b, 'car_loan_deployed')
    assert set(x.family) >= {'service', 'data_drift', 'prediction_drift', 'business', 'performance', 'estimated'}
    assert_same_metrics(x, y)
    assert_same_alerts(a, b, 'car_loan_deployed')


def test_drill_down_reads_the_window_on_spark(credit):
    from wildproof.monitoring import drill_down
    _, b, _ = credit
    st = settings_for(b.root)
    html = drill_down(b, 'credit_risk', MONTHS[1], as_of='2026-07-01', granularity='month', settings=st, engine='spark', sample=500)
    assert html.stat().st_size > 100_000 and 'credit_risk' not in html.name


def test_window_metrics_read_on_spark_alone(credit):
    "`window_metrics(..., engine='spark')` without a span read before: it reads the window on Spark itself, and its rows are DuckDB's."
    from wildproof.monitoring import reference, window_metrics
    a, b, _ = credit
    rows = {}
    for store, kind in ((a, 'duckdb'), (b, 'spark')):
        st = settings_for(store.root)
        ref = reference(store, 'credit_risk', '1', settings=st)
        rows[kind] = window_metrics(store, ref, '2025-01-01', '2025-02-01', as_of='2026-07-01', granularity='month', settings=st, engine=kind)
    x, y = (rows[k].drop(columns='computed_at').sort_values(['family', 'metric', 'subject']).reset_index(drop=True) for k in ('duckdb', 'spark'))
    assert len(x) > 20
    assert_same_metrics(x, y)
    # a window before any answer: its volume, 0, on both
    st = settings_for(b.root)
    empty = window_metrics(b, reference(b, 'credit_risk', '1', settings=st), '2000-01-01', '2000-02-01', as_of='2026-07-01', granularity='month', settings=st, engine='spark')
    assert empty[['family', 'metric', 'value']].values.tolist() == [['service', 'volume', 0.0]]


def test_no_answer_comes_to_the_driver(credit):
    "On Spark a span's answers stay there: `_served` returns an empty frame naming the span's cached view, which holds them."
    from wildproof.engine import connect
    from wildproof.monitoring import _release, _served, reference
    a, b, _ = credit
    s, e, as_of = pd.Timestamp('2025-01-01', tz='UTC'), pd.Timestamp('2025-02-01', tz='UTC'), pd.Timestamp('2026-07-01', tz='UTC')
    held = _served(a, 'credit_risk', s, e, reference(a, 'credit_risk', '1', settings=settings_for(a.root)), as_of, 'duckdb', settings_for(a.root))
    st = settings_for(b.root)
    span = _served(b, 'credit_risk', s, e, reference(b, 'credit_risk', '1', settings=st), as_of, 'spark', st)
    try:
        assert len(span) == 0 and len(span.columns) == 0
        assert connect(st, 'spark').execute(f"select count(*) from {span.attrs['spark_view']}").fetchall()[0][0] == len(held) > 100
    finally: _release(span, st)


# ---------------------------------------------------------------- a regression and a multiclass model that run elsewhere

DATA = CAR_LOAN.parent
TASKS = {
    'regression': dict(model='car_price_deployed', folder='car_price', reference='regression_synthetic_reference.csv',
                       analysis='regression_synthetic_analysis.csv', targets='regression_synthetic_analysis_targets.csv',
                       exclude=['y_true', 'y_pred'], init={}),
    'multiclass': dict(model='card_product_deployed', folder='multiclass', reference='mc_reference.csv', analysis='mc_analysis.csv',
                       targets='mc_analysis_gt.csv',
                       exclude=['y_true', 'y_pred', *[f'y_pred_proba_{c}' for c in ('prepaid_card', 'highstreet_card', 'upmarket_card')]],
                       init={'scores': {c: f'y_pred_proba_{c}' for c in ('prepaid_card', 'highstreet_card', 'upmarket_card')}}),
}


def task_world(task: str, rows: int = 12_000):
    d = TASKS[task]

    def build(store: Store, st):
        from wildproof.audit import record_outcomes
        from wildproof.contracts import infer_contract
        from wildproof.datasets import ingest
        from wildproof.external import import_predictions, outcome_records
        from wildproof.spec import init_spec
        folder, m = DATA / d['folder'], d['model']
        snap = ingest(store, f'{m}_ref', folder / d['reference'])
        infer_contract(store, snap, name=m, key='id', time_column='timestamp', exclude=d['exclude'], settings=st).register(store)
        init_spec(store, m, contract=m, target='y_true', task=task, external=True, prediction='y_pred', **d['init']).register(store)
        ana = pd.read_csv(folder / d['analysis'], parse_dates=['timestamp']).sort_values('timestamp', kind='stable').head(rows)
        import_predictions(store, m, ana, settings=st)
        y = pd.read_csv(folder / d['targets'])
        record_outcomes(store, outcome_records(store, y[y.id.isin(ana.id)], model=m)[0])
    return build


@pytest.mark.slow   # (3 to 4 minutes each at load 9: two chunks drifted on local Spark)
@pytest.mark.parametrize('task', ['regression', 'multiclass'])
def test_other_tasks_same_metrics_and_alerts(task, tmp_path, spark):
    "A regression (its loss model reads the features brought from Spark) and a multiclass model (its probabilities): the same rows and alerts."
    d = TASKS[task]
    if not (DATA / d['folder'] / d['targets']).is_file(): pytest.skip(f'the {d["folder"]} data set is not at {DATA}')
    from wildproof.monitoring import monitor
    (a, sa), (b, sb) = both(tmp_path, task_world(task))
    seconds = {}
    for store, st, kind in ((a, sa, 'duckdb'), (b, sb, 'spark')):
        t0 = time.perf_counter()
        out = monitor(store, d['model'], chunk_rows=6_000, settings=st, engine=kind, progress=False)
        seconds[kind] = time.perf_counter() - t0
    print(f'\n{task}, {len(out)} chunks of 6,000 answers: DuckDB {seconds["duckdb"]:.1f} s, Spark {seconds["spark"]:.1f} s')
    assert len(out) == 2
    x, y = metric_rows(a, d['model']), metric_rows(b, d['model'])
    assert {'performance', 'estimated'} <= set(x.family)
    assert_same_metrics(x, y)
    assert_same_alerts(a, b, d['model'])
