"""The drift statistics on Apache Spark (`wildproof.engine.SparkEngine`, a real local[2] session) against the DuckDB path:
the same SQL, transpiled by sqlglot, must give the same numbers (floats to 1e-9, counts exact).

One Spark session serves the whole module (it takes 10 to 30 s to start); the module is skipped when pyspark, sqlglot or
Java is missing.
"""
import math
import shutil
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

pytest.importorskip('pyspark', reason='the Spark engine needs pyspark: pip install "wildproof[spark]"')
pytest.importorskip('sqlglot', reason='the Spark engine needs sqlglot: pip install "wildproof[spark]"')
if not shutil.which('java'): pytest.skip('the Spark engine needs Java 17 (java on the PATH)', allow_module_level=True)

from wildproof import drift as dm
from wildproof.drift import DriftError
from wildproof.engine import EngineError, SparkEngine, connect, delta_files, spark_sql
from wildproof.examples.credit import world

sys.path.insert(0, str(Path(__file__).parent))
from test_drift import COLUMNS, data                      # noqa: E402  the drift tests' reference and windows

CAR_LOAN = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'car_loan'
CAR_COLUMNS = {'car_value': 'numeric', 'salary_range': 'categorical', 'debt_to_income_ratio': 'numeric', 'loan_length': 'numeric',
               'repaid_loan_on_prev_car': 'categorical', 'size_of_downpayment': 'categorical', 'driver_tenure': 'numeric',
               'y_pred_proba': 'numeric'}


@pytest.fixture(scope='module')
def spark():
    return SparkEngine(master='local[2]')


def both(spark, **frames):
    "A DuckDB connection and the Spark engine, each with `frames` registered under their names."
    con = duckdb.connect()
    for name, f in frames.items():
        con.register(name, f); spark.register(name, f)
    return con


def assert_same_profile(a: dm.Profile, b: dm.Profile):
    """Every field equal, except `distinct`: an approx_count_distinct (HyperLogLog, a different sketch on each engine) that
    only chooses how the KS statistic is computed (exactly either way), never a statistic."""
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        for s in d['stats'].values(): s.pop('distinct', None)
    assert da == db


def assert_same_drift(a: pd.DataFrame, b: pd.DataFrame):
    "Counts exact, floats to 1e-9 (NaN where the other has NaN)."
    assert list(a.columns) == list(b.columns) == dm.COLUMNS
    assert a[['column', 'kind', 'n_reference', 'n_current']].values.tolist() == b[['column', 'kind', 'n_reference', 'n_current']].values.tolist()
    for c in dm.COLUMNS[4:]:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        assert (np.isnan(x) == np.isnan(y)).all(), (c, x, y)
        assert np.allclose(x[~np.isnan(x)], y[~np.isnan(y)], rtol=0, atol=1e-9), (c, x, y)


def test_rewritten_functions_give_duckdbs_values(spark):
    "isfinite, isinf, floor and quantile_disc, which Spark lacks or computes otherwise, give DuckDB's values on every kind of double."
    xs = [0.0, -0.0, 1.5, -1.5, 2.0, 1e300, -1e300, 2.0**60 + 0.5, math.inf, -math.inf, math.nan, None, 4503599627370497.0]
    f = pd.DataFrame({'i': range(len(xs)), 'x': xs})
    con = both(spark, t=f)
    q = "SELECT i, isfinite(x) AS fin, isinf(x) AS inf, floor(x) AS fl, sign(x) * floor(4096.0 * sqrt(abs(x) * '0.5'::DOUBLE)) AS k FROM t ORDER BY i"
    a, b = con.execute(q).df(), spark.execute(q).df()
    for c in ('fin', 'inf'):
        assert [None if pd.isna(v) else bool(v) for v in a[c]] == [None if pd.isna(v) else bool(v) for v in b[c]], c
    for c in ('fl', 'k'):
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        assert (np.isnan(x) == np.isnan(y)).all() and (x[~np.isnan(x)] == y[~np.isnan(y)]).all(), (c, x, y)
    # discrete quantiles: the same element of the sorted values, for groups of 1 to 1000 values
    r = pd.concat([pd.DataFrame({'n': n, 'v': np.arange(n, dtype=float)[::-1]}) for n in (1, 2, 3, 10, 11, 101, 1000)])
    con.register('r', r); spark.register('r', r)
    q = "SELECT n, quantile_disc(v, ['0.1'::DOUBLE, '0.25'::DOUBLE, '0.5'::DOUBLE, '0.75'::DOUBLE, '0.9'::DOUBLE]) FROM r GROUP BY n ORDER BY n"
    assert con.execute(q).fetchall() == [(n, list(qs)) for n, qs in spark.execute(q).fetchall()]
    assert 'PERCENTILE_APPROX' not in spark_sql("SELECT quantile_disc(v, [0.5]) FROM r")
    # continuous quantiles (latency percentiles): linear interpolation between the values around q on both
    q = "SELECT n, quantile_cont(v, 0.5) AS p50, quantile_cont(v, 0.95) AS p95, quantile_cont(v, 0.99) AS p99 FROM r GROUP BY n ORDER BY n"
    assert np.array_equal(con.execute(q).df().to_numpy(float), spark.execute(q).df().to_numpy(float))
    con.close()


@pytest.mark.parametrize('seed, shift', [(1, 0.0), (2, 0.7)])
def test_drift_matches_duckdb(spark, seed, shift):
    "The drift tests' data (nulls, NaN, ±inf, a constant, integers, an unseen category): the same profile and drift on both engines."
    ref, cur = data(seed, n_ref=3000, n_cur=2000, shift=shift)
    con = both(spark, ref=ref, cur=cur)
    pd_, ps = dm.profile(con, 'ref', COLUMNS), dm.profile(spark, 'ref', COLUMNS)
    assert_same_profile(pd_, ps)
    dd = dm.drift(con, 'cur', pd_, reference='ref')
    assert_same_drift(dd, dm.drift(spark, 'cur', ps, reference='ref'))
    if shift: assert dd.set_index('column').loc['region', 'unseen_share'] > 0     # the comparison covers an unseen category
    con.close()


def test_ks_by_buckets_matches_duckdb(spark):
    "Many distinct values: KS is found through buckets refined pass by pass (not value by value); the same D on both engines."
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({'x': rng.normal(0, 1, 30_000), 'y': rng.lognormal(0, 2, 30_000)})
    cur = pd.DataFrame({'x': rng.normal(0.05, 1, 30_000), 'y': rng.lognormal(0.1, 2, 30_000)})
    con = both(spark, ref=ref, cur=cur)
    cols = {'x': (0.0, 0.17, 256), 'y': (1.0, 0.4, 256)}
    a, b = dm.ks_statistics(con, 'ref', 'cur', cols), dm.ks_statistics(spark, 'ref', 'cur', cols)
    assert a == b
    from scipy import stats
    assert a['x'][0] == pytest.approx(stats.ks_2samp(ref.x, cur.x).statistic, abs=1e-12)
    con.close()


def test_demo_world_from_delta_at_a_version(spark, tmp_path):
    """The demo world written as a Delta table in two versions: Spark reads version 0 through the Parquet files its log lists,
    DuckDB the same version through deltalake; the reference (version 0) against a later month gives the same drift."""
    from deltalake import DeltaTable, write_deltalake
    ref, rest = world.split_reference(world.generate_world(rows=20_000, seed=11), 6)
    drop = [world.key, world.target, world.time_column, world.outcome_time_column]
    ref, rest = ref.drop(columns=drop), rest.drop(columns=drop)
    columns = {c: 'numeric' if pd.api.types.is_numeric_dtype(ref[c]) and not pd.api.types.is_bool_dtype(ref[c]) else 'categorical'
               for c in ref.columns if not pd.api.types.is_datetime64_any_dtype(ref[c])}
    path = tmp_path / 'applications'
    write_deltalake(str(path), ref[list(columns)])
    write_deltalake(str(path), rest[list(columns)], mode='append')             # version 1: the reference is no longer all of it
    assert len(delta_files(path, 0)) < len(delta_files(path, 1))
    spark.read_delta('ref', path, version=0)
    cur = rest[list(columns)].iloc[len(rest) // 2:]
    spark.register('cur', cur)
    con = duckdb.connect()
    con.register('ref', DeltaTable(str(path), version=0).to_pyarrow_table()); con.register('cur', cur)
    assert spark.execute('SELECT count(*) FROM ref').fetchall()[0][0] == len(ref)
    pd_, ps = dm.profile(con, 'ref', columns), dm.profile(spark, 'ref', columns)
    assert_same_profile(pd_, ps)
    assert_same_drift(dm.drift(con, 'cur', pd_, reference='ref'), dm.drift(spark, 'cur', ps, reference='ref'))
    con.close()


def test_car_loan_matches_duckdb(spark):
    "The car-loan reference against its analysis period's last 10,000 rows (where the shift is): the same drift on both engines."
    if not (CAR_LOAN / 'analysis.csv').is_file(): pytest.skip(f'the car loan data set is not at {CAR_LOAN}')
    ref = pd.read_csv(CAR_LOAN / 'reference.csv')
    ana = pd.read_csv(CAR_LOAN / 'analysis.csv').sort_values('timestamp')
    for d in (ref, ana): d['repaid_loan_on_prev_car'] = d.repaid_loan_on_prev_car.astype(str)
    ref, cur = ref[list(CAR_COLUMNS)], ana[list(CAR_COLUMNS)].iloc[-10_000:]
    con = both(spark, ref=ref, cur=cur)
    pd_, ps = dm.profile(con, 'ref', CAR_COLUMNS), dm.profile(spark, 'ref', CAR_COLUMNS)
    assert_same_profile(pd_, ps)
    dd = dm.drift(con, 'cur', pd_, reference='ref')
    assert_same_drift(dd, dm.drift(spark, 'cur', ps, reference='ref'))
    assert dd.psi.max() > 0.1                                                     # a window that drifted
    con.close()


def test_errors_are_one_line(spark):
    spark.register('cur', pd.DataFrame({'a': [1.0, 2.0]}))
    with pytest.raises(DriftError, match="lacks column.*'b'"):
        dm.drift(spark, 'cur', dm.profile(pd.DataFrame({'b': [1.0, 2.0]}), {'b': 'numeric'}))
    with pytest.raises(DriftError, match='cannot read the current window'):
        dm.drift(spark, 'no_such_view', dm.profile(pd.DataFrame({'a': [1.0, 2.0]}), {'a': 'numeric'}))
    with pytest.raises(EngineError, match="unknown engine 'dask'"):
        connect({'engine': {'kind': 'dask'}})
    with pytest.raises(EngineError, match='cannot read the Delta table'):
        spark.read_delta('x', '/nonexistent/table', version=0)
    assert isinstance(connect({'engine': {'kind': 'spark'}}), SparkEngine)
    assert isinstance(connect(None), duckdb.DuckDBPyConnection)


def test_a_failed_query_is_one_line_and_nothing_on_stderr(spark, capfd):
    "A query Spark refuses is a one-line QueryError; PySpark's JSON dump of the JVM's stack stays off stderr."
    from wildproof.engine import QueryError
    capfd.readouterr()
    with pytest.raises(QueryError) as e:
        spark.execute('select no_such_function(1)')
    assert '\n' not in str(e.value) and 'no_such_function' in str(e.value).lower()
    err = capfd.readouterr().err
    assert 'Py4JJavaError' not in err and 'stacktrace' not in err, err[:500]


def test_the_session_logs_errors_only():
    "The driver's log4j configuration is the workbench's: errors only (no start-up notices, no warnings)."
    import subprocess
    code = ("from wildproof.engine import SparkEngine; e = SparkEngine(master='local[1]'); "
            "print(e.execute('select count(*) from range(10)').fetchall()[0][0])")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == '10', r.stderr[-2000:]
    assert "log4j profile" not in r.stderr and ' WARN ' not in r.stderr, r.stderr


def test_contract_failing_rows_match_duckdb(spark, tmp_path):
    """The validation pass's query as `contracts.validate` builds it (`_rules`, `_failing`: every failing row, the rules it
    broke and its value), run on both engines over the same Parquet files of a car-loan batch with data-quality faults."""
    if not (CAR_LOAN / 'dq_analysis.csv').is_file(): pytest.skip(f'the car loan data set is not at {CAR_LOAN}')
    from datetime import datetime
    from wildproof.contracts import _failing, _rules, infer_contract, kind_of
    from wildproof.datasets import get_snapshot, ingest, snapshot_dataset
    from wildproof.settings import load_settings
    from wildproof.store import Store
    store = Store(tmp_path / 'store')
    (tmp_path / 'settings.ini').write_text(f'[store]\nroot = {store.root}\n', encoding='utf-8')
    contract = infer_contract(store, ingest(store, 'car_loan', CAR_LOAN / 'reference.csv'), key='id', time_column='timestamp',
                              exclude=['repaid'], settings=load_settings(tmp_path / 'settings.ini', env={}))
    snap = get_snapshot(store, ingest(store, 'car_loan', CAR_LOAN / 'dq_analysis.csv'))
    have = {f.name: kind_of(f.type) for f in snap.schema}
    params: dict = {}
    rules, filters = _rules(contract, have, params, set(), datetime(2030, 1, 1))
    ds = snapshot_dataset(store, snap)
    con = duckdb.connect(); con.register('batch', ds)
    spark.spark.read.parquet(*ds.files).createOrReplaceTempView('batch')
    key = 'CAST(b."id" AS VARCHAR)'
    a = _failing(con, rules, filters, params, have, key).to_pandas().sort_values(['row', 'i']).reset_index(drop=True)
    b = _failing(spark, rules, filters, dict(params), have, key).to_pandas().sort_values(['row', 'i']).reset_index(drop=True)
    assert len(a) > 100 and a['i'].nunique() > 1                                 # faults of several rules
    assert a[['row', 'row_key', 'i']].values.tolist() == b[['row', 'row_key', 'i']].values.tolist()
    assert a.value.tolist() == b.value.tolist()
    con.close()


def test_validate_on_spark_matches_duckdb(spark, tmp_path, capsys, monkeypatch):
    """`validate(..., engine='spark')` against `engine='duckdb'` on a car-loan batch with data-quality faults and a duplicated
    key: the same status, counts per rule, and quarantined rows with their rules and values, written to the store."""
    if not (CAR_LOAN / 'dq_analysis.csv').is_file(): pytest.skip(f'the car loan data set is not at {CAR_LOAN}')
    from datetime import datetime
    from wildproof.contracts import infer_contract, validate
    from wildproof.datasets import ingest
    from wildproof.settings import load_settings
    from wildproof.store import Store
    store = Store(tmp_path / 'store')
    (tmp_path / 'settings.ini').write_text(f'[store]\nroot = {store.root}\n', encoding='utf-8')
    settings = load_settings(tmp_path / 'settings.ini', env={})
    contract = infer_contract(store, ingest(store, 'car_loan', CAR_LOAN / 'reference.csv'), key='id', time_column='timestamp',
                              exclude=['repaid'], settings=settings).register(store)
    batch = pd.read_csv(CAR_LOAN / 'dq_analysis.csv').iloc[:20_000]
    batch = pd.concat([batch, batch.iloc[:7]], ignore_index=True)               # seven duplicated keys
    # doubles Spark writes otherwise (Java: 1.57355E7, 2.5E-5, NaN): quarantined with DuckDB's text on both engines
    batch.loc[[10, 11, 12], 'car_value'] = [15735500.0, -2.5e-05, float('nan')]
    snap = ingest(store, 'car_loan_batch', batch)
    now = datetime(2030, 1, 1)
    a = validate(store, snap, contract, settings=settings, now=now, engine='duckdb')
    b = validate(store, snap, contract, settings=settings, now=now, engine='spark')
    assert a.validation_id != b.validation_id
    assert (a.status, a.rows_accepted, a.rows_quarantined, a.rows_rejected) == (b.status, b.rows_accepted, b.rows_quarantined, b.rows_rejected)
    # a rule's examples are its first three failing rows in the order the engine returns them (neither orders them)
    strip = lambda rules: [{k: v for k, v in r.items() if k != 'examples'} for r in rules]
    assert strip(a.rules) == strip(b.rules) and a.problems == b.problems
    assert a.rows_quarantined > 7 and any(r['rule'] == 'unique_key' and r['failed'] == 7 for r in a.rules)
    qa, qb = a.quarantined(), b.quarantined()
    assert {'15735500.0', '-2.5e-05'} <= set(qb[qb.column == 'car_value'].value)
    cols = ['row', 'row_key', 'rule', 'column', 'value', 'reason']
    assert qa[cols].values.tolist() == qb[cols].values.tolist()
    for r in b.rules:                                                           # Spark's examples are real failing values
        values = set(qb[(qb.rule == r['rule']) & (qb.column == r['column'])].value)
        assert len(r['examples']) == min(3, r['failed']) and set(r['examples']) <= values, r
    # the command line: `wildproof validate SNAPSHOT --contract NAME --engine spark` says the same
    from wildproof.cli import main
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(['--store', str(store.root), 'validate', snap.snapshot_id, '--contract', contract.name, '--engine', 'spark']) == (0 if a.ok else 1)
    out = capsys.readouterr().out
    assert f'{a.status}: {snap.snapshot_id}' in out and f'{a.rows_quarantined:,} quarantined' in out, out


def test_the_window_querys_constructs_match_duckdb(spark, tmp_path):
    """What monitoring's window query (wildproof.monitoring._served_sql) asks of Spark: arg_max over NULLs (the known outcomes:
    DuckDB skips a NULL value, Spark's max_by does not, so it is rewritten), UNION ALL BY NAME (the batch records' snapshots:
    Spark lacks it, so it becomes a positional union in the left side's order), JSON inputs parsed (json_extract_string with
    quoted keys, a dot in a name, numbers, booleans, JSON null) and TRY_CAST, coalesce, and a pyarrow Parquet dataset registered."""
    import pyarrow as pa
    import pyarrow.dataset as pds
    import pyarrow.parquet as pq
    from wildproof.engine import QueryError
    t = pa.table({'k': ['a', 'a', 'b', 'b', 'c', 'd'], 'x': [1.0, None, 2.0, 3.0, None, 4.0], 'y': [1, 2, 1, 2, 1, None],
                  'j': ['{"a.b": 1.50, "c": "t\u00e9", "d": true, "e": null}', None, '{"a.b": 1e5}', '{"c": 3}', '{"a.b": "x"}', '{"c": "it\'s"}']})
    pq.write_table(t, tmp_path / 't.parquet')
    ds = pds.dataset([str(tmp_path / 't.parquet')], format='parquet')
    con = duckdb.connect(); con.register('t', ds); spark.register('t', ds)
    queries = [
        'SELECT k, arg_max(x, y) AS m, arg_max(j, y) AS mj, max(y) AS my FROM t GROUP BY 1 ORDER BY 1',
        '''SELECT k, json_extract_string(j, '$."a.b"') AS ab, json_extract_string(j, '$."c"') AS c, json_extract_string(j, '$."d"') AS d,
                  json_extract_string(j, '$."e"') AS e, coalesce(TRY_CAST(x AS DOUBLE), TRY_CAST(json_extract_string(j, '$."a.b"') AS DOUBLE)) AS n
           FROM t ORDER BY k, y''',
        '''SELECT * FROM (SELECT 'one' AS s, k, x FROM t UNION ALL BY NAME SELECT 'two' AS s, x, k FROM t
           UNION ALL BY NAME SELECT NULL::VARCHAR AS s, NULL AS k, NULL AS x WHERE false) ORDER BY s, k, x''',
    ]
    for q in queries:
        a, b = con.execute(q).df(), spark.execute(q).df()
        assert a.astype(object).where(a.notna(), None).values.tolist() == b.astype(object).where(b.notna(), None).values.tolist(), (q, a, b)
    with pytest.raises(QueryError, match='BY NAME'): spark.execute('SELECT 1 AS a UNION ALL BY NAME SELECT 2 AS b').df()
    con.close()


def _answers(n, seed, task):
    "A window's answers as `_served` gives them: refused ones, fallbacks, model errors, ties, missing scores, outcomes and probabilities."
    g = np.random.default_rng(seed)
    f = pd.DataFrame(dict(seq=np.arange(n), route=g.choice(['champion', 'fallback', 'invalid', 'canary'], n, p=[.8, .05, .05, .1]),
                          source=g.choice(['rest', 'batch'], n), reasons=g.choice([None, 'model error: boom', 'model unavailable', 'x'], n, p=[.9, .03, .03, .04]),
                          latency_ms=g.gamma(2, 5, n), batch_size=g.choice([1, 1, 1, 50], n), score=np.round(g.random(n), 2)))
    f.loc[g.random(n) < .05, 'score'] = np.nan
    if task == 'binary':
        f['outcome'] = np.where(g.random(n) < f.score.fillna(.5) ** 1.5, 1.0, 0.0)
        f['decision'] = np.where(f.score >= .5, 'decline', 'approve')
    elif task == 'regression':
        f['x'], f['colour'] = g.normal(0, 1, n), g.choice(['red', 'blue'], n)
        f['score'], f['outcome'], f['decision'] = 3 * f.x, 3 * f.x + g.normal(0, 1, n) * np.where(f.colour == 'red', 2, 1), None
    else:
        P = np.round(g.dirichlet([.6, .6, .6], n) ** 1.5, 2)
        P[g.random(n) < .03, 1] = np.nan
        d = np.array(['a', 'b', 'c'])[np.nan_to_num(P, nan=-1).argmax(1)]
        d[g.random(n) < .1] = 'b'
        f = f.assign(score=np.nanmax(P, 1), decision=d, predicted_class=d, outcome=np.nan,
                     label=np.array(['a', 'b', 'c'])[g.integers(0, 3, n)], **{f'probability:{c}': P[:, j] for j, c in enumerate('abc')})
    f.loc[g.random(n) < .3, 'outcome' if task != 'multiclass' else 'label'] = None
    f.loc[f.route == 'fallback', 'decision'] = 'review' if task == 'binary' else f.decision
    return f


@pytest.mark.parametrize('task', ['binary', 'multiclass', 'regression'])
def test_window_figures_match_duckdb(spark, task):
    """A window's service, business and performance figures (`_window_sql`, with `_derive` on Spark's workers): every count
    exact and every float to 1e-9 on both engines, for each task, with calibrations and a loss model fitted on a reference."""
    from wildproof import monitoring as mo
    ref = _answers(20_000, 1, task)
    ref = ref[ref.route != 'invalid'].dropna(subset=['score'])
    if task == 'binary':
        r = mo.Reference('m', '1', ref, [], [], 0.5, calibrator=mo.fit_calibration(ref.score, ref.outcome.fillna(0), method='always'))
    elif task == 'multiclass':
        r = mo.Reference('m', '1', ref, [], [], 0.5, task='multiclass', classes=['a', 'b', 'c'])
        r.class_calibrators = mo.fit_class_calibration(mo._probas(r, ref), ref.label, r.classes, method='always')
    else:
        r = mo.Reference('m', '1', ref.dropna(subset=['outcome']), ['x'], ['colour'], 0.5, task='regression')
        assert r.loss_model is not None
    w = _answers(3_000, 2, task)
    a = mo._local_figures(r, w)
    spark.register('w', w)
    b = mo._spark_figures(spark, r, 'w')
    assert a.pop('decisions') == b.pop('decisions')
    assert sorted(a) == sorted(b)
    for k in a:
        x, y = float(a[k]), float(b[k])
        assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-9, (k, x, y)
