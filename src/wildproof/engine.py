"""Where the heavy statistics run: DuckDB in this process (the default) or Apache Spark (`[engine] kind = spark`).

The statistics are written once, as DuckDB SQL (wildproof.drift, wildproof.contracts). `SparkEngine` runs that same SQL on
Spark: it transpiles each query with sqlglot (DuckDB dialect to Spark's) and rewrites the two functions whose Spark
counterpart differs (`isfinite` and `isinf`, which Spark lacks; `floor`, which Spark returns as a BIGINT that overflows under
ANSI mode; `quantile_disc`; `arg_max`, whose NULLs Spark's `max_by` treats otherwise; `UNION BY NAME`, which Spark lacks), then hands the small result back with the DuckDB connection's interface (`execute(sql).fetchall()`, `.df()`,
`.description`), so a calculator takes either. See docs/decisions/0018-spark-engine.md.
"""
from __future__ import annotations

import functools
import os
import re
import sys
import threading
from pathlib import Path

import pandas as pd

from .settings import WildproofError

__all__ = ['KINDS', 'EngineError', 'QueryError', 'spark_sql', 'spark_session', 'SparkEngine', 'engine_kind', 'connect', 'delta_files']

KINDS = ('duckdb', 'spark')


class EngineError(WildproofError):
    "The engine asked for cannot be used: an unknown kind, Spark or Java missing, a Delta table that cannot be read."


class QueryError(WildproofError):
    "A query failed on the engine (a relation that cannot be read, a column it lacks)."


# ---------------------------------------------------------------- DuckDB SQL to Spark SQL

_TWO52 = "CAST('4503599627370496' AS DOUBLE)"   # 2**52: every double at least this large is an integer


def _rewrite(node):
    "The functions whose Spark counterpart is missing or differs, rewritten to give DuckDB's value."
    from sqlglot import exp
    if isinstance(node, exp.Anonymous) and node.name.lower() == 'isfinite':
        # NaN is larger than every double in Spark (as in DuckDB), so it fails `<`; ±inf fail it too; NULL stays NULL
        return exp.LT(this=exp.Abs(this=node.expressions[0].copy()), expression=exp.cast(exp.Literal.string('Infinity'), 'DOUBLE'))
    if isinstance(node, exp.IsInf):
        # DuckDB's isinf(x); sqlglot writes Spark's as IS_INF, which Spark does not have
        return exp.EQ(this=exp.Abs(this=node.this.copy()), expression=exp.cast(exp.Literal.string('Infinity'), 'DOUBLE'))
    if isinstance(node, exp.PercentileDisc) and isinstance(node.args.get('expression'), exp.Array):
        # DuckDB's quantile_disc(v, [q, ...]) is Spark's percentile_disc(array(q, ...)) WITHIN GROUP (ORDER BY v): both the
        # smallest value whose cumulative share reaches q. sqlglot 30 writes Spark's as PERCENTILE_APPROX, so it is written here.
        return exp.Var(this=f"PERCENTILE_DISC({node.expression.sql(dialect='spark')}) WITHIN GROUP (ORDER BY {node.this.sql(dialect='spark')})")
    if isinstance(node, exp.PercentileCont) and not isinstance(node.args.get('expression'), exp.Array) and node.args.get('expression') is not None:
        # DuckDB's quantile_cont(v, q) interpolates linearly between the values around q, as Spark's exact percentile(v, q) does
        return exp.Anonymous(this='PERCENTILE', expressions=[node.this.transform(_rewrite), node.expression.copy()])
    if isinstance(node, exp.ArgMax) and not isinstance(node.this, exp.Star):
        # DuckDB's arg_max(x, y) takes x at the largest y among the rows where x is not NULL; Spark's max_by(x, y) takes it among
        # all rows (a NULL x wins if its y is largest). So y is hidden where x is NULL: max_by skips a NULL y.
        # (sqlglot does not descend into a node a rewrite returns: its parts are rewritten here)
        x, y = node.this.transform(_rewrite), node.expression.transform(_rewrite)
        return exp.ArgMax(this=x, expression=exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=x.copy(), expression=exp.Null())), true=y)]))
    if isinstance(node, exp.Union) and node.args.get('by_name'):
        return _by_position(node)
    if isinstance(node, exp.Floor) and not node.args.get('decimals'):
        # DuckDB's floor of a DOUBLE is a DOUBLE (±inf and NaN stay); Spark's is a BIGINT, an overflow error past 2**63
        x = node.this.transform(_rewrite)
        return exp.Case(ifs=[exp.If(this=exp.GTE(this=exp.Abs(this=x.copy()), expression=_parse(_TWO52)), true=x.copy())],
                        default=exp.cast(exp.Floor(this=x.copy()), 'DOUBLE'))
    return node


def _by_position(node):
    """DuckDB's `UNION [ALL] BY NAME`, which Spark SQL lacks, as a positional union: the right side's columns put in the order of
    the left side's names. Refused when a side's names are not known (a `*`) or differ."""
    from sqlglot import exp
    left, right = node.this.named_selects, node.expression
    names = right.named_selects if isinstance(right, exp.Select) else []
    if not left or '*' in left or sorted(left) != sorted(names) or len(set(names)) != len(names):
        raise QueryError('UNION BY NAME on Spark needs both sides to name the same columns, without *')
    by = {e.alias_or_name: e for e in right.expressions}
    right = right.copy()
    right.set('expressions', [by[n].copy() for n in left])
    out = node.copy()
    out.set('by_name', None)
    out.set('this', node.this.transform(_rewrite))    # (sqlglot does not descend into a node a rewrite returns)
    out.set('expression', right.transform(_rewrite))
    return out


def _parse(sql: str):
    import sqlglot
    return sqlglot.parse_one(sql, read='spark')


@functools.lru_cache(maxsize=256)
def spark_sql(sql: str) -> str:
    "The DuckDB query `sql` as Spark SQL that gives the same result."
    import sqlglot
    try: tree = sqlglot.parse_one(sql, read='duckdb')
    except sqlglot.errors.ParseError as e: raise QueryError(f'cannot read the query for Spark: {str(e).splitlines()[0]}') from None
    return tree.transform(_rewrite).sql(dialect='spark')


# ---------------------------------------------------------------- the Spark session

_LOCK = threading.Lock()
_SESSION = None


def spark_session(master: str = 'local[2]', options: dict[str, str] | None = None):
    """The process's Spark session, made once (later calls get the same session whatever they pass: Spark has one per process).
    Refuses with a one-line EngineError when pyspark or Java is missing."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None: return _SESSION
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise EngineError('[engine] kind = spark needs pyspark: pip install "wildproof[spark]" (and Java 17)') from None
        import shutil
        if not os.environ.get('JAVA_HOME') and not shutil.which('java'):
            raise EngineError('[engine] kind = spark needs Java 17 (java on the PATH or JAVA_HOME)')
        b = (SparkSession.builder.master(master).appName('wildproof')
             .config('spark.ui.enabled', 'false').config('spark.ui.showConsoleProgress', 'false')
             .config('spark.sql.session.timeZone', 'UTC')
             .config('spark.sql.execution.arrow.pyspark.enabled', 'true')
             .config('spark.sql.shuffle.partitions', _local_cores(master) if master.startswith('local') else '200'))
        options = dict(options or {})
        java = options.get('spark.driver.extraJavaOptions', '')
        if 'log4j2.configurationFile' not in java:   # the driver's log: errors only (Spark's start-up notices are not for users)
            options['spark.driver.extraJavaOptions'] = f"{java} -Dlog4j2.configurationFile={(Path(__file__).parent / 'spark-log4j2.properties').as_uri()}".strip()
        for k, v in options.items(): b = b.config(k, v)
        try: spark = b.getOrCreate()
        except Exception as e: raise EngineError(f'cannot start Spark at {master!r}: {str(e).splitlines()[0]}') from None
        spark.sparkContext.setLogLevel('ERROR')
        from pyspark.logger import PySparkLogger
        for name in ('SQLQueryContextLogger', 'DataFrameQueryContextLogger'):   # each failed query's JVM stack as JSON on stderr: said as a QueryError instead
            PySparkLogger.getLogger(name).disabled = True
        _SESSION = spark
        return spark


def _local_cores(master: str) -> str:
    "The shuffle partitions of a local session: one per core of local[N] (the aggregates return small results; more partitions only add tasks)."
    m = re.fullmatch(r'local\[(\d+)\]', master.strip())
    return m.group(1) if m else str(os.cpu_count() or 2)


# ---------------------------------------------------------------- the engine, with a DuckDB connection's interface

class _Result:
    "What `SparkEngine.execute` returns: a Spark DataFrame read the way a DuckDB result is."
    def __init__(self, frame): self.frame = frame

    @property
    def description(self) -> list[tuple]: return [(f.name, str(f.dataType)) for f in self.frame.schema.fields]

    def fetchall(self) -> list[tuple]: return [tuple(r) for r in _run(self.frame.collect)]

    def df(self) -> pd.DataFrame: return _run(self.frame.toPandas)

    def to_arrow_table(self):
        "The result as an Arrow table."
        return _run(self.frame.toArrow)

    arrow = to_arrow_table


def _run(f):
    try: return f()
    except Exception as e:
        if isinstance(e, WildproofError): raise
        raise QueryError(_first_line(e)) from None


def _first_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


def delta_files(path, version: int | None = None) -> list[str]:
    "The Parquet files the Delta log of the table at `path` lists at `version` (the newest if None): what a reader of that version reads."
    from deltalake import DeltaTable
    try: t = DeltaTable(str(path), version=version)
    except Exception as e: raise EngineError(f'cannot read the Delta table {str(path)!r} at version {version}: {_first_line(e)}') from None
    return t.file_uris()


def python_workers(spark) -> None:
    """Spark's Python workers (what `mapInArrow` runs: the evaluation's scoring, a window's calibration or loss model) run this
    process's Python on a local master unless PYSPARK_PYTHON says otherwise (Spark's default, `python3` on the PATH, may not
    have wildproof); on a cluster they run what PYSPARK_PYTHON names, which must have wildproof installed."""
    sc = spark.sparkContext
    if not os.environ.get('PYSPARK_PYTHON') and sc.master.startswith('local'): sc.pythonExec = sys.executable


class SparkEngine:
    "Runs the statistics' DuckDB SQL on Spark (transpiled); relations are Spark temporary views."
    kind = 'spark'

    def __init__(self, spark=None, *, master: str = 'local[2]', options: dict[str, str] | None = None, delta: bool = False):
        self.spark = spark or spark_session(master, options)
        self.delta = bool(delta)
        python_workers(self.spark)

    def execute(self, sql: str, parameters: dict | None = None) -> _Result:
        """The DuckDB query `sql`, run on Spark; `$name` parameters (a dict) become Spark's named parameters `:name`.
        `CREATE TEMP TABLE name AS query` makes a cached temporary view."""
        if parameters is not None and not isinstance(parameters, dict):
            raise QueryError('the Spark engine takes named parameters ($name and a dict), not positional ones')
        m = re.match(r'(?is)\s*CREATE\s+(?:TEMP|TEMPORARY)\s+TABLE\s+(\w+)\s+AS\s+(.*)$', sql)
        if m:
            frame = self.execute(m.group(2), parameters).frame.cache()
            frame.createOrReplaceTempView(m.group(1))
            return _Result(frame.limit(0))
        q = spark_sql(sql)
        return _Result(_run(lambda: self.spark.sql(q, args=parameters or None)))

    def sql(self, sql: str, params: dict | None = None) -> _Result: return self.execute(sql, params)

    def register(self, name: str, data) -> SparkEngine:
        """Make `data` (a pandas DataFrame, an Arrow table, a pyarrow dataset of Parquet files, or a Spark DataFrame) the temporary
        view `name`. A Parquet dataset (what `wildproof.datasets.snapshot_dataset` gives) is read by Spark from its files."""
        if hasattr(data, 'files') and getattr(getattr(data, 'format', None), 'default_extname', None) == 'parquet':
            return self.read_parquet(name, data.files)
        if not hasattr(data, 'createOrReplaceTempView'):
            import pyarrow as pa
            if isinstance(data, pa.Table): data = data.to_pandas()
            data = self.spark.createDataFrame(data)
        data.createOrReplaceTempView(name)
        return self

    def view(self, name: str, sql: str, parameters: dict | None = None) -> SparkEngine:
        "Make the DuckDB query `sql` (run on Spark, with its `$name` parameters) the temporary view `name` (not cached)."
        self.execute(sql, parameters).frame.createOrReplaceTempView(name)
        return self

    def read_delta(self, name: str, path, version: int | None = None, *, schema=None) -> SparkEngine:
        """Make the Delta table at `path` (at `version`, the newest if None) the temporary view `name`: with Spark's Delta
        reader when `delta` (the Delta Lake jars on the cluster), else through the Parquet files its log lists. `schema` (an
        Arrow schema): an empty view of it when the table does not exist yet or has no rows."""
        if schema is not None and (not (Path(path) / '_delta_log').is_dir() or (not self.delta and not delta_files(path, version))):
            _run(lambda: self.spark.createDataFrame(schema.empty_table())).createOrReplaceTempView(name)
            return self
        if self.delta:
            r = self.spark.read.format('delta')
            if version is not None: r = r.option('versionAsOf', int(version))
            frame = _run(lambda: r.load(str(path)))
        else:
            files = delta_files(path, version)
            if not files: raise EngineError(f'the Delta table {str(path)!r} has no data files at version {version}')
            frame = _run(lambda: self.spark.read.parquet(*files))
        frame.createOrReplaceTempView(name)
        return self

    def read_parquet(self, name: str, files) -> SparkEngine:
        "Make the Parquet `files` the temporary view `name`."
        files = [str(f) for f in files]
        if not files: raise EngineError(f'no Parquet files to read as {name!r}')
        _run(lambda: self.spark.read.parquet(*files)).createOrReplaceTempView(name)
        return self

    def unregister(self, name: str) -> None:
        "Drop the temporary view `name` (and its cached rows, if it was cached)."
        try: self.spark.catalog.uncacheTable(name)
        except Exception: pass   # (not cached, or already gone)
        self.spark.catalog.dropTempView(name)

    def close(self) -> None: pass           # the session lives as long as the process


def engine_kind(settings=None, kind: str | None = None) -> str:
    "The engine asked for: `kind`, else `[engine] kind` of `settings`, else duckdb; an unknown one is an EngineError."
    kind = str(kind or ((settings or {}).get('engine', {}) or {}).get('kind') or 'duckdb').lower()
    if kind not in KINDS: raise EngineError(f'unknown engine {kind!r}: one of {", ".join(KINDS)}')
    return kind


def connect(settings=None, kind: str | None = None):
    """A connection for the heavy statistics: a new DuckDB connection, or a `SparkEngine` on the process's Spark session,
    as `kind` (else `[engine] kind` of `settings`) says."""
    eng = ((settings or {}).get('engine', {}) or {}) if settings is not None else {}
    if engine_kind(settings, kind) == 'duckdb':
        import duckdb
        return duckdb.connect()
    return SparkEngine(master=eng.get('spark_master') or 'local[2]', options=eng.get('spark_options') or {},
                       delta=bool(eng.get('spark_delta', False)))
