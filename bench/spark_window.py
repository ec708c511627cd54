#!/usr/bin/env python
"""Benchmark: one window's service, business, realized and estimated performance figures (`monitoring._window_sql`, with the
reference's isotonic calibration applied by `_derive`) on local Spark against DuckDB: the same SQL, on the same Parquet file.

    .venv/bin/python bench/spark_window.py                       # 1 and 5 million answers
    .venv/bin/python bench/spark_window.py --sizes 100000        # a quick smoke run

For each size, in a temporary folder deleted at the end, a binary model's prediction log is written as one Parquet file
(route, source, reasons, latency, batch size, decision, a score with 4 decimals, the outcome known for 70%). Each engine runs
in a fresh process of its own:
  * duckdb: the window read into the process (as `_served` gives it to `window_metrics`), `_local_figures`: `_derive` in
            numpy and the two queries in DuckDB over the frame.
  * spark:  a local[N] session (N = --cores), the file as a view, `_spark_figures`: `_derive` on the workers (`mapInArrow`,
            the calibration broadcast), the two queries transpiled; no answer comes to the driver.
Printed per engine: session start (Spark only), the figures' wall seconds, and the peak RSS of the workbench's own Python
process (the driver) and of its children (Spark's JVM and Python workers; /proc VmHWM, summed). The two engines' figures are
compared (floats to 1e-9, counts exact). The load average is printed with the figures: taken while other work runs, they are noisy.
"""
from __future__ import annotations

import argparse, json, math, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import run_child                # noqa: E402
from spark_drift import _children, _vmhwm   # noqa: E402


def _descendants(pid: int) -> list[int]:
    "Every process below `pid`: Spark's JVM, and the Python workers its daemon forks."
    out = []
    for c in _children(pid): out += [c, *_descendants(c)]
    return out


def generate(folder: Path, n: int, seed: int) -> tuple[str, str]:
    "The window's answers and a 200,000-row reference (scores and outcomes, for the calibration), as Parquet files."
    import numpy as np
    import pandas as pd
    g = np.random.default_rng(seed)
    def answers(n):
        score = np.round(g.beta(2, 5, n), 4)
        f = pd.DataFrame(dict(route=g.choice(['champion', 'canary', 'fallback', 'invalid'], n, p=[.85, .1, .03, .02]),
                              source=g.choice(['rest', 'batch'], n, p=[.3, .7]),
                              reasons=g.choice([None, 'model error: timeout', 'low confidence'], n, p=[.97, .01, .02]),
                              latency_ms=g.gamma(2, 4, n), batch_size=g.choice([1, 500], n, p=[.3, .7]), score=score,
                              outcome=np.where(g.random(n) < np.clip(score * 1.3, 0, 1), 1.0, 0.0)))
        f['decision'] = np.where(f.score >= .5, 'decline', 'approve')
        f.loc[g.random(n) < .3, 'outcome'] = np.nan
        return f
    cur, ref = folder / 'window.parquet', folder / 'reference.parquet'
    answers(n).to_parquet(cur, index=False)
    answers(200_000).dropna(subset=['outcome']).to_parquet(ref, index=False)
    return str(cur), str(ref)


def child(kind: str, cur: str, ref: str, cores: int, driver_memory: str, out: str) -> None:
    os.environ['MLFLOW_DISABLE_TELEMETRY'] = 'true'
    import pandas as pd
    from wildproof import monitoring as mo
    r = pd.read_parquet(ref)
    reference = mo.Reference('bench', '1', r, [], [], 0.5, calibrator=mo.fit_calibration(r.score, r.outcome, method='always'))
    res = dict(kind=kind)
    t = time.perf_counter()
    if kind == 'duckdb':
        res['start_s'] = 0.0
        t = time.perf_counter()
        f = mo._local_figures(reference, pd.read_parquet(cur))
    else:
        from wildproof.engine import SparkEngine, spark_session
        eng = SparkEngine(spark_session(f'local[{cores}]', {'spark.driver.memory': driver_memory}))
        eng.read_parquet('w', [cur])
        res['start_s'] = time.perf_counter() - t
        t = time.perf_counter()
        f = mo._spark_figures(eng, reference, 'w')
    res['figures_s'] = time.perf_counter() - t
    res['driver_mb'] = _vmhwm(os.getpid())
    res['children_mb'] = sum(_vmhwm(c) for c in _descendants(os.getpid()))
    res['figures'] = {k: (v if isinstance(v, dict) else float(v)) for k, v in f.items()}
    Path(out).write_text(json.dumps(res))


def run(kind: str, cur: str, ref: str, cores: int, driver_memory: str, tmp: Path) -> dict | None:
    return run_child(__file__, kind, ['--cur', cur, '--ref', ref, '--cores', cores, '--driver-memory', driver_memory], tmp)


def same(a: dict, b: dict) -> str:
    if a.keys() != b.keys(): return f'differ in their figures: {sorted(set(a) ^ set(b))}'
    for k, x in a.items():
        y = b[k]
        if isinstance(x, dict):
            if x != y: return f'differ in {k}'
        elif not ((math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-9): return f'differ in {k}: {x!r} against {y!r}'
    return f'identical ({len(a)} figures; floats to 1e-9, counts exact)'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[1_000_000, 5_000_000])
    ap.add_argument('--cores', type=int, default=2)
    ap.add_argument('--driver-memory', default='2g')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--child'); ap.add_argument('--cur'); ap.add_argument('--ref'); ap.add_argument('--out')
    a = ap.parse_args(argv)
    if a.child: return child(a.child, a.cur, a.ref, a.cores, a.driver_memory, a.out)
    for n in a.sizes:
        tmp = Path(tempfile.mkdtemp(prefix='spark_window_'))
        try:
            cur, ref = generate(tmp, n, a.seed)
            r = {k: run(k, cur, ref, a.cores, a.driver_memory, tmp) for k in ('duckdb', 'spark')}
            load = os.getloadavg()
            print(f'\n{n:,} answers in the window; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}')
            print(f'{"engine":8} {"start s":>8} {"figures s":>10} {"driver MB":>10} {"JVM+workers MB":>15}')
            for k, x in r.items():
                if x: print(f'{k:8} {x["start_s"]:8.2f} {x["figures_s"]:10.2f} {x["driver_mb"]:10.0f} {x["children_mb"]:15.0f}')
            if not (r['duckdb'] and r['spark']): continue
            d, s = r['duckdb'], r['spark']
            print(f'spark / duckdb: figures {s["figures_s"] / d["figures_s"]:.1f}x the time; the driver {s["driver_mb"] / d["driver_mb"]:.2f}x the memory')
            print('figures:', same(d['figures'], s['figures']))
        finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
