#!/usr/bin/env python
"""Benchmark: one window's drift statistics (`wildproof.drift.drift`, 20 columns, with exact KS) on local Spark against DuckDB,
the same SQL (transpiled by sqlglot for Spark, decision 0018), on the same Parquet files.

    .venv/bin/python bench/spark_drift.py                          # 1 and 5 million rows per side
    .venv/bin/python bench/spark_drift.py --sizes 5000000 50000000 # the issue's sizes (50M: about 5 GB of Parquet, long)
    .venv/bin/python bench/spark_drift.py --sizes 100000           # a quick smoke run

For each size, in a temporary folder deleted at the end: bench/drift.py's generator writes a reference and a window of the
size each (15 numeric, 5 categorical columns; 9 of them drift). Each engine then runs in a fresh process of its own:
  * duckdb: views over read_parquet(...) of the two files; `profile` of the reference, then `drift` of the window.
  * spark:  a local[N] session (N = --cores, default 2; driver memory --driver-memory), temporary views over
            spark.read.parquet(...) of the same files (what `SparkEngine.read_delta` does with the Parquet files a Delta
            log lists); the same `profile` and `drift` calls with the `SparkEngine` as the connection.
Printed per engine: session start (Spark only), profile and drift wall seconds, and the peak RSS of the process and its
children (the JVM: /proc VmHWM of each, summed). The drift results of the two engines are compared (floats to 1e-9, counts
exact) and the comparison printed. Figures taken while other work runs on the machine are noisy: the load average is
printed with them.
"""
from __future__ import annotations

import argparse, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import run_child   # noqa: E402


def _vmhwm(pid: int) -> float:
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    except OSError: pass
    return 0.0


def _children(pid: int) -> list[int]:
    out = []
    for p in Path('/proc').iterdir():
        if not p.name.isdigit(): continue
        try:
            if int((p / 'stat').read_text().split(')')[-1].split()[1]) == pid: out.append(int(p.name))
        except (OSError, IndexError, ValueError): pass
    return out


def child(kind: str, files: dict, cores: int, driver_memory: str, out: str, profile_json: str | None = None) -> None:
    os.environ['MLFLOW_DISABLE_TELEMETRY'] = 'true'
    from drift import NUMERIC, CATEGORICAL
    from wildproof import drift as dm
    columns = {**{c: 'numeric' for c in NUMERIC}, **{c: 'categorical' for c in CATEGORICAL}}
    res = dict(kind=kind)
    t = time.perf_counter()
    if kind == 'duckdb':
        import duckdb
        con = duckdb.connect()
        for side in ('ref', 'cur'): con.execute(f"CREATE VIEW {side} AS SELECT * FROM read_parquet('{files[side]}')")
    else:
        from wildproof.engine import SparkEngine, spark_session
        con = SparkEngine(spark_session(f'local[{cores}]', {'spark.driver.memory': driver_memory}))
        for side in ('ref', 'cur'): con.spark.read.parquet(files[side]).createOrReplaceTempView(side)
    res['start_s'] = time.perf_counter() - t
    if profile_json:                                   # the other engine's profile (--no-spark-profile)
        prof, res['profile_s'] = dm.Profile.from_dict(json.loads(Path(profile_json).read_text())['profile']), float('nan')
    else:
        t = time.perf_counter(); prof = dm.profile(con, 'ref', columns); res['profile_s'] = time.perf_counter() - t
    t = time.perf_counter(); d = dm.drift(con, 'cur', prof, reference='ref'); res['drift_s'] = time.perf_counter() - t
    res['peak_mb'] = _vmhwm(os.getpid()) + sum(_vmhwm(c) for c in _children(os.getpid()))
    res['drift'] = d.to_dict('list')
    res['profile'] = prof.to_dict()
    Path(out).write_text(json.dumps(res, default=float))


def run(kind: str, files: dict, cores: int, driver_memory: str, tmp: Path, profile_json: str | None = None) -> dict:
    return run_child(__file__, kind, ['--files', json.dumps(files), '--cores', cores, '--driver-memory', driver_memory]
                     + (['--profile-json', profile_json] if profile_json else []), tmp)


def same(a: dict, b: dict) -> str:
    import numpy as np
    for c, x in a.items():
        y = b[c]
        if c in ('column', 'kind', 'n_reference', 'n_current'):
            if list(x) != list(y): return f'differ in {c}'
        else:
            x, y = np.asarray(x, float), np.asarray(y, float)
            if not ((np.isnan(x) == np.isnan(y)).all() and np.allclose(x[~np.isnan(x)], y[~np.isnan(y)], rtol=0, atol=1e-9)):
                return f'differ in {c}: max |diff| {np.nanmax(np.abs(x - y)):.3g}'
    return 'identical (floats to 1e-9, counts exact)'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[1_000_000, 5_000_000])
    ap.add_argument('--cores', type=int, default=2)
    ap.add_argument('--driver-memory', default='4g')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--no-spark-profile', action='store_true', help="Spark computes the drift from DuckDB's profile (the profile is made once per model)")
    ap.add_argument('--profile-json')
    ap.add_argument('--child'); ap.add_argument('--files'); ap.add_argument('--out')
    a = ap.parse_args(argv)
    if a.child: return child(a.child, json.loads(a.files), a.cores, a.driver_memory, a.out, a.profile_json)
    from drift import generate
    for n in a.sizes:
        tmp = Path(tempfile.mkdtemp(prefix='spark_drift_'))
        try:
            files = generate(tmp, n, a.seed)
            files = {k: files[k] for k in ('ref', 'cur')}
            r = {'duckdb': run('duckdb', files, a.cores, a.driver_memory, tmp)}
            r['spark'] = run('spark', files, a.cores, a.driver_memory, tmp, str(tmp / 'duckdb.json') if a.no_spark_profile else None)
            load = os.getloadavg()
            print(f'\n{n:,} rows per side, 20 columns; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}')
            print(f'{"engine":8} {"start s":>8} {"profile s":>10} {"drift s":>8} {"peak MB":>8}')
            for k, x in r.items():
                if x: print(f'{k:8} {x["start_s"]:8.2f} {x["profile_s"]:10.2f} {x["drift_s"]:8.2f} {x["peak_mb"]:8.0f}')
            if not (r['duckdb'] and r['spark']): continue
            d, s = r['duckdb'], r['spark']
            print(f'spark / duckdb: drift {s["drift_s"] / d["drift_s"]:.1f}x, profile {s["profile_s"] / d["profile_s"]:.1f}x, peak memory {s["peak_mb"] / d["peak_mb"]:.1f}x')
            print('drift results:', same(d['drift'], s['drift']))
        finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
