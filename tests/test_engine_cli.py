"""`--engine duckdb|spark` from the shell (issue 22): real processes on copies of the default demo's store.

The same command on DuckDB and on Spark writes the same metric rows and alerts and the same evaluation; a report names its
engine, and a report of the same inputs made on the other engine is recognised. Each Spark command is a process of its
own that starts its own JVM (tens of seconds, minutes on a busy machine), so the Spark part is two such commands; the
Spark parts skip when pyspark or Java is missing. The statistics themselves are compared engine against engine in
tests/test_spark_engine.py, tests/test_spark_monitoring.py and tests/test_spark_evaluate.py."""
import json, os, shutil, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wildproof import reports
from wildproof.store import Store
from tests.test_reports import cli


def _no_spark() -> str | None:
    try: import pyspark, sqlglot   # noqa: F401
    except ImportError: return 'the Spark engine needs pyspark and sqlglot: pip install "wildproof[spark]"'
    if not (os.environ.get('JAVA_HOME') or shutil.which('java')): return 'the Spark engine needs Java 17 (java on the PATH)'
    return None


spark = pytest.mark.skipif(_no_spark() is not None, reason=_no_spark() or '')
# (the Spark tests are also `slow`: 9 and 4.5 minutes under load 10 on 2 cores, most of it Spark's fixed cost per query)
WEEK = ['--model', 'credit_risk', '--window', '2025-04-09', '--every', 'week', '--as-of', '2026-06-01']   # a week the demo did not compute


def _one_line_error(r, *messages):
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith('wildproof: error: ') and any(m in r.stderr for m in messages), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr


def test_engine_arguments_and_refusals(demo_copy):
    store = Store(demo_copy)
    for args in (['monitor', '--engine', 'bogus'], ['drill-down', 'credit_risk', '2025-04-09', '--engine', 'bogus'],
                 ['evaluate', 'credit_risk', '1', 'loans_evaluation@latest', '--engine', 'bogus'], ['validate', 'x.csv', '--contract', 'c', '--engine', 'bogus'],
                 ['report', 'monitoring', '--engine', 'bogus']):
        r = cli(*args, store=demo_copy, check=False)
        assert r.returncode == 2 and "invalid choice: 'bogus'" in r.stderr, (args, r.stderr)
    p = cli('report', 'validation', '--parameters', store=demo_copy).stdout
    assert "engine = ''" in p and '# duckdb or spark: where a batch not validated yet is validated' in p and '[engine] kind' in p
    assert '# duckdb or spark: where a window not computed yet is computed' in cli('report', 'monitoring', '--parameters', store=demo_copy).stdout
    n = len(reports.index(store))
    _one_line_error(cli('report', 'evaluation', '--engine', 'spark', store=demo_copy, check=False), 'computes nothing, so it takes no --engine')
    _one_line_error(cli('report', 'monitoring', 'engine=bogus', store=demo_copy, check=False), "engine='bogus': the engine is duckdb or spark")
    assert len(reports.index(store)) == n
    # Spark asked for where it cannot start (here: no Java on the PATH): one line naming what to install, nothing written
    before = len(store.sql('select * from metrics_history'))
    venv = str(Path(sys.executable).parent)
    r = cli('monitor', *WEEK, '--engine', 'spark', store=demo_copy, check=False, env={'PATH': venv, 'JAVA_HOME': ''})
    _one_line_error(r, 'needs Java 17', 'needs pyspark')
    # the schedule follows [engine] kind: its monitoring asks for Spark too
    r = cli('schedule', 'run', '--job', 'monitoring', '--force', store=demo_copy, check=False, env={'PATH': venv, 'JAVA_HOME': '', 'WILDPROOF_ENGINE_KIND': 'spark'})
    _one_line_error(r, 'needs Java 17', 'needs pyspark')
    assert len(store.sql('select * from metrics_history')) == before


def _window(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    "The metric rows and alerts of the week WEEK computes."
    m = store.sql("select family, metric, subject, value, status, detail_json from metrics where model = 'credit_risk' and granularity = 'week' "
                  "and window_start = '2025-04-07 00:00:00+00' order by family, metric, subject")
    a = store.sql("select rule, subject, severity, state, value, threshold, message from alerts where model = 'credit_risk' "
                  "and window_start = '2025-04-07 00:00:00+00' order by rule, subject")
    return m, a


@spark
@pytest.mark.slow
def test_monitor_and_its_report_on_spark_equal_duckdb(demo_copy, tmp_path):
    other = tmp_path / 'copy_b'
    shutil.copytree(demo_copy, other)
    duck = cli('monitor', *WEEK, '--engine', 'duckdb', store=demo_copy).stdout
    on_spark = cli('monitor', *WEEK, '--engine', 'spark', store=other).stdout
    assert duck == on_spark and 'credit_risk' in duck and '2025-04-07' in duck   # the printed summary: volume, drift, performance, alerts opened
    (md, ad), (ms, as_) = _window(Store(demo_copy)), _window(Store(other))
    assert len(md) > 50 and {'data_drift', 'prediction_drift', 'performance', 'estimated', 'service'} <= set(md.family)
    keys = ['family', 'metric', 'subject', 'status', 'detail_json']
    assert md[keys].fillna('').equals(ms[keys].fillna(''))
    assert np.allclose(md.value.astype(float), ms.value.astype(float), rtol=1e-9, atol=1e-9, equal_nan=True)
    assert ad.fillna('').drop(columns='value').equals(as_.fillna('').drop(columns='value'))
    assert np.allclose(ad.value.astype(float), as_.value.astype(float), rtol=1e-9, atol=1e-9, equal_nan=True)
    # the report of that week names its engine; the summaries on the two stores say the same
    r = cli('report', 'monitoring', 'window=2025-04-09', 'granularity=week', 'engine=spark', store=other)
    assert 'engine spark' in r.stdout
    folder = Path(r.stdout.strip().splitlines()[-1])
    s_spark = json.loads((folder / 'summary.json').read_text())
    assert s_spark['engine'] == 'spark' and 'Engine: spark' in (folder / 'monitoring.html').read_text()
    assert json.loads(reports.index(Store(other), kind='monitoring').parameters_json.iloc[-1])['engine'] == 'spark'
    r = cli('report', 'monitoring', 'window=2025-04-09', 'granularity=week', '--engine', 'duckdb', store=demo_copy)
    s_duck = json.loads((Path(r.stdout.strip().splitlines()[-1]) / 'summary.json').read_text())
    assert s_duck['engine'] == 'duckdb' and s_duck['verdict'] == s_spark['verdict'] and s_duck['alerts'] == s_spark['alerts']
    assert s_duck['metrics'].keys() == s_spark['metrics'].keys()
    assert all(np.isclose(s_duck['metrics'][k], s_spark['metrics'][k], rtol=1e-9, atol=1e-9) if s_duck['metrics'][k] is not None
               else s_spark['metrics'][k] is None for k in s_duck['metrics'])
    # the same inputs on the other engine: recognised as the run already made, which says its engine
    n = len(reports.index(Store(demo_copy)))
    again = cli('report', 'monitoring', 'window=2025-04-09', 'granularity=week', '--engine', 'spark', store=demo_copy).stdout
    assert 'already reported with the same inputs' in again and 'made on duckdb' in again and len(reports.index(Store(demo_copy))) == n


@spark
@pytest.mark.slow
def test_evaluate_on_spark_writes_the_evaluation_duckdb_writes(demo_copy, tmp_path):
    from wildproof.evaluation import Evaluation
    from tests.test_spark_evaluate import assert_same_evaluation
    args = ['evaluate', 'credit_risk', '1', 'loans_evaluation@latest', '--no-cost']
    d = cli(*args, '--engine', 'duckdb', '-o', tmp_path / 'duckdb.json', store=demo_copy).stdout
    s = cli(*args, '--engine', 'spark', '-o', tmp_path / 'spark.json', store=demo_copy).stdout
    assert d.replace('duckdb.json', 'X') == s.replace('spark.json', 'X')   # the printed metrics, intervals and flags
    local, on_spark = Evaluation.load(tmp_path / 'duckdb.json'), Evaluation.load(tmp_path / 'spark.json')
    assert local.info['rows'] > 10_000 and local.slices and local.fairness
    assert_same_evaluation(local, on_spark)
