"""Evaluating a registered version on a snapshot on Apache Spark (`registry.evaluate_version(..., engine='spark')`, a real
local[2] session, a real MLflow SQLite store) gives the same evaluation as the local path: overall metrics, calibration,
slices, fairness, baselines, leakage and flags equal, floats to 1e-9. The bootstraps are seeded (`[evaluation]` seed 0,
one generator per section and slice) and drawn over the rows in the snapshot's order on both paths, so their intervals
are equal too. Only the cost section differs: latencies and the batch time are timings (it is compared by its keys).

One Spark session serves the whole process (`engine.spark_session` caches it); skipped when pyspark, sqlglot or Java is missing.
"""
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

from wildproof.datasets import ingest
from wildproof.engine import EngineError, SparkEngine
from wildproof.registry import RegistryError, evaluate_version
from wildproof.settings import load_settings
from wildproof.store import Store
from wildproof.training import train
from tests.worlds import credit_world

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


@pytest.fixture(scope='module')
def spark():
    return SparkEngine(master='local[2]')


def same(a, b, path='evaluation'):
    "Equal plain data, floats to 1e-9 (relative for large values)."
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f'{path}: keys {list(a)} != {list(b) if isinstance(b, dict) else b}'
        for k in a: same(a[k], b[k], f'{path}.{k}')
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f'{path}: {len(a) if isinstance(a, list) else a} items != {b if not isinstance(b, list) else len(b)}'
        for i, (x, y) in enumerate(zip(a, b)): same(x, y, f'{path}[{i}]')
    elif isinstance(a, float) and not isinstance(a, bool):
        assert isinstance(b, (float, int)) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), f'{path}: {a!r} != {b!r}'
    else: assert a == b, f'{path}: {a!r} != {b!r}'


def assert_same_evaluation(local, on_spark):
    a, b = local.to_dict(), on_spark.to_dict()
    ca, cb = a.pop('cost'), b.pop('cost')
    assert (ca is None) == (cb is None) and (ca is None or set(ca) == set(cb))
    for x in (a, b):   # the latencies measured for the baseline's "slow for its gain" are timings
        x['baseline'].get('logistic_regression', x['baseline'].get('linear_regression', {})).pop('latency_p95_ms', None)
        for k in ('latency_ratio', 'slow_for_gain'): x['baseline'].pop(k, None)
        x['flags'] = [f for f in x['flags'] if f['section'] != 'cost' and f['subject'] != 'slow_for_gain']
    same(a, b)


@pytest.fixture(scope='module')
def credit(tmp_path_factory):
    "The credit demo world: a version trained on its reference months, the later months (with outcomes) as the evaluation snapshot."
    store = Store(tmp_path_factory.mktemp('spark_eval') / 'store')
    ref, later, snap, spec = credit_world(store, rows=12_000, seed=5, contract='apps', model='risk', reference='ref')
    v = train(store, snap, spec).version
    later = later[later[spec.target].notna()]
    return store, spec, v, ingest(store, 'later', later), later


def test_the_credit_world_evaluates_the_same_on_spark(spark, credit):
    """Point-in-time features, the user's row features, edge and period slices, fairness with intervals: the same on Spark. Batches of
    1,000 rows over the partitions: each batch builds its features alone, so the answers must not depend on the other rows."""
    store, spec, v, snap, later = credit
    t0 = time.perf_counter(); local = evaluate_version(store, spec.model, v, snap, measure_cost=False, engine='duckdb'); t1 = time.perf_counter()
    conf = spark.spark.conf
    before = conf.get('spark.sql.execution.arrow.maxRecordsPerBatch')
    conf.set('spark.sql.execution.arrow.maxRecordsPerBatch', '1000')
    try: on_spark = evaluate_version(store, spec.model, v, snap, measure_cost=False, engine='spark'); t2 = time.perf_counter()
    finally: conf.set('spark.sql.execution.arrow.maxRecordsPerBatch', before)
    print(f'credit world, {local.info["rows"]:,} rows: local {t1 - t0:.1f} s, Spark local[2] {t2 - t1:.1f} s')
    assert local.info['rows'] > 1000 and local.slices and local.fairness and local.baseline['available']
    assert any(s['kind'] == 'edge' for s in local.slices) and any(s['kind'] == 'period' for s in local.slices)
    assert_same_evaluation(local, on_spark)


def test_the_engine_comes_from_the_settings_and_costs_are_measured(spark, credit, tmp_path):
    store, spec, v, snap, later = credit
    ini = tmp_path / 'spark.ini'
    ini.write_text(f'[store]\nroot = {store.root}\n[engine]\nkind = spark\n', encoding='utf-8')
    st = load_settings(ini)
    ev = evaluate_version(store, spec.model, v, snap, settings=st)     # [engine] kind = spark
    c = ev.cost
    assert c['batch_rows'] == ev.info['rows'] and c['batch_seconds'] > 0 and c['latency_ms']['calls'] > 0 and c['model_size_bytes'] > 0


def test_bad_input_is_a_clear_error_on_spark(spark, credit):
    store, spec, v, snap, later = credit
    with pytest.raises(EngineError, match="unknown engine 'hive'"): evaluate_version(store, spec.model, v, snap, engine='hive')
    from wildproof.contracts import get_contract, validate
    nolabels = ingest(store, 'nolabels', later.head(300).drop(columns=[spec.target]))
    validate(store, nolabels, get_contract(store, 'apps'), engine='duckdb')   # recorded: Spark's validation (tested elsewhere) is not repeated here
    with pytest.raises(RegistryError, match=f"has no outcome column '{spec.target}'"):
        evaluate_version(store, spec.model, v, nolabels, engine='spark', measure_cost=False)


OWN = dict(car_price=('regression', dict(sensitive=['fuel'])),
           multiclass=('multiclass', dict(classes=['highstreet_card', 'prepaid_card', 'upmarket_card'], sensitive=['is_customer'])))


@pytest.mark.parametrize('kind', list(OWN))
def test_a_users_regression_and_multiclass_model_evaluate_the_same_on_spark(spark, tmp_path, kind):
    "Public data of deployed models (NannyML's car prices, credit-card products): a small version of each, its analysis rows evaluated on both engines."
    if not (DATA / 'car_price' / 'regression_synthetic_reference.csv').is_file() or not (DATA / 'multiclass' / 'mc_reference.csv').is_file():
        pytest.skip(f'the car price and multiclass data sets are not in {DATA}')
    from wildproof.contracts import infer_contract
    from wildproof.spec import init_spec
    from tests.test_evaluation_tasks import load
    task, kw = OWN[kind]
    ref, an = load(kind)
    store = Store(tmp_path / 'store')
    snap = ingest(store, f'{kind}_ref', ref.head(3_000))
    infer_contract(store, snap, name=kind, key='id', time_column='timestamp', exclude=['y_true']).register(store)
    spec = init_spec(store, kind, contract=kind, target='y_true', task=task, **kw).register(store)
    v = train(store, snap, spec, params=dict(max_iter=20, early_stopping=False)).version
    asnap = ingest(store, f'{kind}_analysis', an.head(5_000))
    local = evaluate_version(store, kind, v, asnap, measure_cost=False, engine='duckdb')
    on_spark = evaluate_version(store, kind, v, asnap, measure_cost=False, engine='spark')
    assert local.info['task'] == task and local.info['rows'] == 5_000 and local.fairness
    assert_same_evaluation(local, on_spark)
