#!/usr/bin/env python
"""Benchmark: wildproof's drift statistics for one window (`wildproof.drift.drift`), next to Evidently's DataDriftPreset and a
plain DuckDB scan of the same data, each measured in the same run.

    .venv/bin/python bench/drift.py                              # 1 and 5 million rows per side (about 4 to 5 minutes on 2 cores)
    .venv/bin/python bench/drift.py --skip-evidently             # without Evidently (about 1 minute)
    .venv/bin/python bench/drift.py --sizes 100000 --repeats 1   # a quick smoke run

What it does, for each size, in a temporary folder deleted at the end:

1. Data. numpy generates a reference and a current window of `--sizes` rows each (seeded), 20 columns: 15 numeric (float64
   normal, skewed and uniform, one float32, integer counts and ages, one with 1 % nulls) and 5 categorical text columns
   (4 to 20 categories). Both are written to Parquet in chunks of 500,000 rows. In the window, 6 numeric columns drift (a
   mean shift, a scale change, a longer tail, more nulls, a changed integer mix), 2 categorical columns change their mix and
   one gets 1 % of a category the reference never had; the other 9 columns come from the reference's distribution.
   DuckDB reads the files through views `ref` and `cur` over `read_parquet(...)`.
2. Contenders. Timings: one fresh process alternates the scan and drift `--repeats` times over the same connection,
   so that both see the same machine (best and median wall seconds, CPU seconds of all threads). Peak RSS: each
   contender once more in a fresh process of its own (read from /proc VmHWM, which is ru_maxrss), so that it is the
   contender's alone:
   * drift:     `wildproof.drift.drift(con, 'cur', profile, reference='ref')` on all 20 columns: PSI, Jensen-Shannon,
                exact KS with p-value, chi-square, missing and unseen shares. The profile is computed beforehand in its
                own process (`profile`, once per model in real use) and read from JSON; its time is shown apart. For
                information, the same without KS (`reference=None`) is timed alongside. At sizes up to 1 million rows the
                KS statistic and p-value of three columns are checked against scipy.stats.ks_2samp.
   * scan:      a plain DuckDB scan of the same 20 columns of both files that reads every value once: `sum(c)` of each
                numeric column and `sum(length(c))` of each text column (`min`/`max`/`count` would be answered from the
                Parquet files' statistics without reading the data).
   * evidently: `Report([DataDriftPreset()]).run(...)` on the same data read into pandas (Evidently 0.7: Dataset,
                DataDefinition with the 15 numeric and 5 categorical columns). One run; only at sizes up to
                `--evidently-max-rows` (default 1,000,000). Reading the Parquet files into pandas is timed apart and
                not counted.
3. Goals (printed PASS/FAIL, never asserted): at 1 million rows, drift is at least 50x faster than Evidently and needs at
   most 1/4 of its peak memory; at 5 million rows, drift takes at most 10x the plain scan and less than 2 GB of peak RSS.

DuckDB runs with its default number of threads. The files are in the OS page cache (just written, and the timing process
scans them once untimed first), so timings measure CPU work, not disk.
"""
from __future__ import annotations

import argparse, json, os, platform, resource, shutil, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

from _common import git_commit, verdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
NUMERIC = ['income', 'loan_amount', 'score_a', 'score_b', 'ratio', 'tenure', 'balance', 'rate', 'age', 'children',
           'txn_count', 'latency', 'utilization', 'weight32', 'sparse']
CATEGORICAL = ['region', 'channel', 'product', 'segment', 'device']
DRIFTING = ['income', 'score_a', 'ratio', 'balance', 'txn_count', 'sparse', 'channel', 'segment', 'device']
CHUNK = 500_000
GOALS = dict(speedup=50.0, memory_share=0.25, scan_ratio=10.0, peak_mb=2048.0)




# ---- data

def _chunk(rng, n: int, current: bool) -> pa.Table:
    "`n` rows of the reference's distribution, or of the current window's (drifted in the DRIFTING columns)."
    d = 1.0 if current else 0.0
    cat = lambda names, p: pa.array(np.array(names, dtype=object)[rng.choice(len(names), n, p=np.asarray(p) / np.sum(p))], pa.string())
    cols = {
        'income': rng.lognormal(10.8 + 0.1 * d, 0.5, n),                       # drifts: +10 % in the median
        'loan_amount': rng.lognormal(9.5, 0.8, n),
        'score_a': rng.normal(600 + 15 * d, 50, n),                            # drifts: +0.3 sd
        'score_b': rng.normal(0, 1, n),
        'ratio': rng.beta(2, 5 + 2 * d, n),                                     # drifts: shape
        'tenure': rng.exponential(36, n),
        'balance': rng.normal(5000, 2000 * (1 + 0.5 * d), n),                  # drifts: scale x1.5
        'rate': rng.uniform(0.02, 0.2, n),
        'age': rng.integers(18, 80, n).astype('int32'),
        'children': rng.poisson(1.2, n).astype('int64'),
        'txn_count': rng.poisson(20 + 4 * d, n).astype('int64'),               # drifts: +20 %
        'latency': rng.gamma(2.0, 50.0, n),
        'utilization': rng.uniform(0, 1, n) ** 2,
        'weight32': rng.normal(70, 12, n).astype('float32'),
    }
    sparse = rng.normal(0, 1, n)
    sparse[rng.random(n) < (0.01 + 0.04 * d)] = np.nan                         # drifts: 1 % -> 5 % nulls
    cols['sparse'] = pa.array(sparse, from_pandas=True)
    cols['region'] = cat([f'r{i:02d}' for i in range(20)], np.linspace(1, 3, 20))
    cols['channel'] = cat(['web', 'branch', 'phone', 'partner'], [0.5, 0.3, 0.15, 0.05] if not current else [0.35, 0.3, 0.2, 0.15])
    cols['product'] = cat(['loan', 'card', 'mortgage', 'overdraft', 'lease', 'bnpl'], [6, 5, 4, 3, 2, 1])
    cols['segment'] = cat([f's{i}' for i in range(8)], [8, 7, 6, 5, 4, 3, 2, 1] if not current else [1, 2, 3, 4, 5, 6, 7, 8])
    dev = ['ios', 'android', 'desktop', 'tablet', 'tv'] + (['watch'] if current else [])
    cols['device'] = cat(dev, [40, 40, 15, 4, 1] + ([1] if current else []))  # the window: 1 % on a device never seen
    return pa.table(cols)


def generate(folder: Path, rows: int, seed: int) -> dict:
    "Write ref.parquet and cur.parquet of `rows` rows each; returns their paths and sizes."
    out = {}
    for i, side in enumerate(('ref', 'cur')):
        rng = np.random.default_rng([seed, i])
        path = folder / f'{side}.parquet'
        writer = None
        for start in range(0, rows, CHUNK):
            t = _chunk(rng, min(CHUNK, rows - start), side == 'cur')
            writer = writer or pq.ParquetWriter(path, t.schema)
            writer.write_table(t)
        writer.close()
        out[side] = str(path)
    out['mb'] = sum(Path(p).stat().st_size for p in (out['ref'], out['cur'])) / 2**20
    return out


# ---- the contenders, each run in a fresh process

from contract_check import _peak_mb, _status_mb   # noqa: E402  (peak RSS from /proc VmHWM, ru_maxrss where /proc is missing)


def _connect(files: dict):
    import duckdb
    con = duckdb.connect()
    for side in ('ref', 'cur'): con.execute(f"CREATE VIEW {side} AS SELECT * FROM read_parquet('{files[side]}')")
    return con


def _scan_sql(side: str) -> str:
    "Every value of the 20 columns read once: sum() of each numeric column, sum(length()) of each text column (min/max or count would be answered from the Parquet statistics)."
    return 'SELECT ' + ', '.join([f'sum("{c}")' for c in NUMERIC] + [f'sum(length("{c}"))' for c in CATEGORICAL]) + f' FROM {side}'


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _child(kind: str, files: dict, repeats: int, profile_json: str | None, check: bool = False) -> dict:
    """One contender in this fresh process. `timing` alternates the scan and drift `repeats` times (wall and CPU seconds);
    `drift`, `scan` and `profile` run once for their peak RSS; `evidently` runs once for both."""
    columns = {**{c: 'numeric' for c in NUMERIC}, **{c: 'categorical' for c in CATEGORICAL}}
    out = dict(kind=kind)
    if kind != 'evidently':
        from wildproof import drift as dm
        con = _connect(files)
        out['threads'] = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
        scan = lambda: [con.execute(_scan_sql(side)).fetchall() for side in ('ref', 'cur')]
        if kind != 'profile': p = dm.Profile.from_dict(json.loads(Path(profile_json).read_text()))
        run = dict(scan=scan, drift=lambda: dm.drift(con, 'cur', p, reference='ref'), no_ks=lambda: dm.drift(con, 'cur', p),
                   profile=lambda: Path(profile_json).write_text(json.dumps(dm.profile(con, 'ref', columns).to_dict())))
        if kind == 'timing':
            scan()                                                                     # untimed: the files into the page cache
            times = dict(scan=[], drift=[], no_ks=[]); cpus = dict(scan=[], drift=[], no_ks=[])
            for _ in range(repeats):
                for k in ('scan', 'drift', 'no_ks'):
                    t, c = time.perf_counter(), _cpu(); res = run[k](); times[k].append(time.perf_counter() - t); cpus[k].append(_cpu() - c)
                    if k == 'drift': out['result'] = [{c: (None if isinstance(v, float) and v != v else v) for c, v in r.items()} for r in res.to_dict('records')]
            out.update(times=times, cpus=cpus)
            # where one more drift() call spends its time: the SQL of each pass, and everything else (Python, p-values)
            parts = {}
            def timed(label, fn):
                def wrapper(*a, **k):
                    t = time.perf_counter(); r = fn(*a, **k)
                    parts.setdefault(label(*a, **k), []).append(time.perf_counter() - t); return r
                return wrapper
            orig = dm._numeric_counts, dm._categorical_counts, dm._ks_side
            dm._numeric_counts = timed(lambda *a, **k: 'window bins, missing shares (numeric: one scan)', dm._numeric_counts)
            dm._categorical_counts = timed(lambda *a, **k: 'window categories (categorical: one GROUP BY each)', dm._categorical_counts)
            dm._ks_side = timed(lambda con_, rel, queries, first: ('KS bucket counts' if first else 'KS finer or exact counts') + f' ({len(queries)} columns)', dm._ks_side)
            try: t0 = time.perf_counter(); run['drift'](); total = time.perf_counter() - t0
            finally: dm._numeric_counts, dm._categorical_counts, dm._ks_side = orig
            out['breakdown'] = dict(total=total, parts={k: sum(v) for k, v in parts.items()}, calls={k: len(v) for k, v in parts.items()})
            if check:                                                                  # the KS statistic against scipy on three columns
                from scipy import stats
                got = {r['column']: r for r in out['result']}
                diffs = {}
                for c in ('income', 'age', 'sparse'):
                    a, b = (con.execute(f'SELECT "{c}" FROM {side} WHERE isfinite("{c}")').fetchnumpy()[c] for side in ('ref', 'cur'))
                    want = stats.ks_2samp(a, b, method='asymp')
                    diffs[c] = (abs(got[c]['ks'] - want.statistic), abs(got[c]['ks_p_value'] - want.pvalue))
                out['check'] = diffs
        else:
            out['before_mb'] = _status_mb('VmRSS')
            t = time.perf_counter(); run[kind](); out['times'] = [time.perf_counter() - t]
            out['peak_mb'] = _peak_mb()
    else:
        import warnings
        import pandas as pd
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            from evidently import DataDefinition, Dataset, Report
            from evidently.presets import DataDriftPreset
            t = time.perf_counter()
            ref, cur = pd.read_parquet(files['ref']), pd.read_parquet(files['cur'])
            out['load_s'] = time.perf_counter() - t
            out['before_mb'] = _status_mb('VmRSS')
            dd = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
            t = time.perf_counter()
            snap = Report([DataDriftPreset()]).run(current_data=Dataset.from_pandas(cur, data_definition=dd),
                                                  reference_data=Dataset.from_pandas(ref, data_definition=dd))
            out['times'] = [time.perf_counter() - t]
            out['peak_mb'] = _peak_mb()
            metrics = snap.dict()['metrics']                                           # its own verdict: which columns drifted, by which method
            out['drifted'] = sorted(m['config']['column'] for m in metrics if m['config'].get('type', '').endswith('ValueDrift')
                                    and float(m['value']) >= float(m['config'].get('threshold') or 0.1))
            out['methods'] = sorted({m['config']['method'] for m in metrics if m['config'].get('type', '').endswith('ValueDrift')})
    return out


def run_child(kind: str, files: dict, repeats: int = 1, profile_json: str | None = None, check: bool = False) -> dict:
    cmd = ([sys.executable, __file__, '--child', kind, json.dumps(files), '--repeats', str(repeats)] + (['--profile-json', profile_json] if profile_json else [])
           + (['--check'] if check else []))
    r = subprocess.run(cmd, capture_output=True, text=True)
    try: return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f'  {kind}: FAILED ({r.returncode}): {(r.stderr.strip().splitlines() or ["no output"])[-1]}')
        return dict(kind=kind, failed=True)


def _fmt(xs) -> str: return f'{min(xs):8.2f} / {statistics.median(xs):8.2f}' if xs else 'n/a'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sizes', default='1000000,5000000', help='rows per side, comma-separated (default 1000000,5000000)')
    ap.add_argument('--repeats', type=int, default=3, help='timed runs of drift and of the scan (default 3)')
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--skip-evidently', action='store_true', help='do not run Evidently (it takes about 2 minutes and 2 GB at 1 million rows)')
    ap.add_argument('--evidently-max-rows', type=int, default=1_000_000, help='run Evidently only at sizes up to this (default 1,000,000)')
    ap.add_argument('--json', type=Path, default=None, help='also write the figures to this JSON file')
    ap.add_argument('--child', nargs=2, metavar=('KIND', 'FILES'), help=argparse.SUPPRESS)
    ap.add_argument('--profile-json', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--check', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], json.loads(args.child[1]), args.repeats, args.profile_json, args.check), default=str))
        return 0

    import duckdb, wildproof
    try:
        import evidently; ev_version = evidently.__version__
    except ImportError: ev_version = None
    print(f'wildproof {wildproof.__version__} · duckdb {duckdb.__version__} · evidently {ev_version} · pyarrow {pa.__version__} · numpy {np.__version__} · '
          f'python {platform.python_version()} · {os.cpu_count()} CPUs · load average {", ".join(f"{x:.2f}" for x in os.getloadavg())} · commit {git_commit()}')
    sizes = [int(s) for s in args.sizes.split(',') if s.strip()]
    figures = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'), commit=git_commit(), cpus=os.cpu_count(), seed=args.seed,
                   repeats=args.repeats, duckdb=duckdb.__version__, evidently=ev_version, sizes={})
    work = Path(tempfile.mkdtemp(prefix='wildproof-bench-drift-'))
    summary = []
    try:
        for rows in sizes:
            folder = work / str(rows); folder.mkdir()
            t = time.perf_counter(); files = generate(folder, rows, args.seed); gen_s = time.perf_counter() - t
            print(f'\n== {rows:,} rows per side x 20 columns (15 numeric, 5 categorical): Parquet {files["mb"]:,.0f} MB, generated in {gen_s:.1f} s')
            prof_json = str(folder / 'profile.json')
            load0 = os.getloadavg()[0]
            res = {'profile': run_child('profile', files, profile_json=prof_json)}
            timing = run_child('timing', files, args.repeats, prof_json, check=rows <= 1_000_000)
            res['scan'], res['drift'] = run_child('scan', files, profile_json=prof_json), run_child('drift', files, profile_json=prof_json)
            if not args.skip_evidently and ev_version and rows <= args.evidently_max_rows:
                print('  running Evidently DataDriftPreset (about 2 minutes at 1 million rows) ...', flush=True)
                res['evidently'] = run_child('evidently', files)
            load1 = os.getloadavg()[0]
            if timing.get('failed'): continue
            t, cpu = timing['times'], timing['cpus']
            print(f'\n  {"":28} {"wall s best / median":>22} {"CPU s best":>11} {"peak RSS MB (before)":>22}')
            names = dict(profile='profile (once per model)', scan='plain DuckDB scan', drift='drift (one window)', no_ks='  the same without KS',
                         evidently='Evidently DataDriftPreset')
            for k in ('profile', 'scan', 'drift', 'no_ks', 'evidently'):
                if k not in res and k not in t: continue
                r = res.get(k, {})
                mem = f"{r['peak_mb']:,.0f} ({r['before_mb']:,.0f})" if 'peak_mb' in r else ('failed' if k in res else '')
                wall = _fmt(t[k]) if k in t else _fmt(r.get('times', []))
                extra = f'   (+ {r["load_s"]:.1f} s reading Parquet into pandas, not counted)' if k == 'evidently' and 'load_s' in r else ''
                print(f'  {names[k]:28} {wall:>22} {(f"{min(cpu[k]):.2f}" if k in cpu else ""):>11} {mem:>22}{extra}')
            tab = timing['result']
            flagged = sorted(r['column'] for r in tab if (r['psi'] or 0) >= 0.1 or (r['ks_p_value'] is not None and r['ks_p_value'] < 1e-6)
                             or (r['chi2_p_value'] is not None and r['chi2_p_value'] < 1e-6) or abs(r['missing_current'] - r['missing_reference']) > 0.02)
            print(f'  drift flagged (PSI >= 0.1, a p-value < 1e-6 or the missing share moved by > 2 points): {", ".join(flagged)}; '
                  f'drifting by construction: {", ".join(sorted(DRIFTING))}' + (' (all found)' if set(flagged) == set(DRIFTING) else ''))
            print('  ' + ' · '.join(f'{r["column"]} psi {r["psi"]:.3f}' + (f' ks {r["ks"]:.4f}' if r['ks'] is not None else '') for r in tab))
            if 'breakdown' in timing:
                bd = timing['breakdown']; rest = bd['total'] - sum(bd['parts'].values())
                print(f'  where one drift() call spends its {bd["total"]:.2f} s: '
                      + '; '.join(f'{k} {v:.2f} s' + (f' ({bd["calls"][k]} queries)' if bd['calls'][k] > 1 else '') for k, v in bd['parts'].items())
                      + f'; the rest (Python: merging buckets, p-values) {rest:.2f} s')
            if 'check' in timing:
                print('  KS against scipy.stats.ks_2samp(method=\'asymp\'), |difference| of D and of the p-value: '
                      + ', '.join(f'{c} {a:.1e} / {b:.1e}' for c, (a, b) in timing['check'].items()))
            if 'drifted' in res.get('evidently', {}):
                e = res['evidently']
                print(f'  Evidently ({", ".join(e["methods"])}) flagged: {", ".join(e["drifted"])}')
            fig = dict(rows=rows, parquet_mb=round(files['mb']), load_before=load0, load_after=load1, timing={k: v for k, v in timing.items() if k != 'result'},
                       **{k: v for k, v in res.items()})
            fig['drift_over_scan'] = min(t['drift']) / min(t['scan'])
            fig['drift_over_scan_cpu'] = min(cpu['drift']) / min(cpu['scan'])
            fig['no_ks_over_scan'] = min(t['no_ks']) / min(t['scan'])
            line = (f'  drift / scan = {fig["drift_over_scan"]:.2f}x (medians {statistics.median(t["drift"]) / statistics.median(t["scan"]):.2f}x, '
                    f'CPU time {fig["drift_over_scan_cpu"]:.2f}x; without KS {fig["no_ks_over_scan"]:.2f}x)')
            e = res.get('evidently', {})
            if 'times' in e and 'peak_mb' in res['drift']:
                fig['speedup_vs_evidently'] = e['times'][0] / min(t['drift']); fig['memory_share_of_evidently'] = res['drift']['peak_mb'] / e['peak_mb']
                line += f"; Evidently / drift = {fig['speedup_vs_evidently']:.0f}x, drift peak = {fig['memory_share_of_evidently']:.2f} of Evidently's"
            print(line + f'; load average {load0:.2f} -> {load1:.2f}')
            summary.append(fig)
            figures['sizes'][rows] = fig
            shutil.rmtree(folder, ignore_errors=True)

        print(f'\n{"goal":64} {"measured":>18} {"verdict":>8}')
        for f in summary:
            rows = f['rows']
            if 'speedup_vs_evidently' in f and rows == 1_000_000:
                print(f'{"1M rows: drift >= 50x faster than Evidently DataDriftPreset":64} {f["speedup_vs_evidently"]:>17.0f}x {verdict(f["speedup_vs_evidently"] >= GOALS["speedup"]):>8}')
                goal = "1M rows: drift peak RSS <= 1/4 of Evidently's"
                print(f'{goal:64} {f["memory_share_of_evidently"]:>18.2f} {verdict(f["memory_share_of_evidently"] <= GOALS["memory_share"]):>8}')
            if rows == 5_000_000:
                print(f'{"5M rows: drift <= 10x the plain DuckDB scan":64} {f["drift_over_scan"]:>17.2f}x {verdict(f["drift_over_scan"] <= GOALS["scan_ratio"]):>8}')
                print(f'{"5M rows: drift peak RSS < 2 GB":64} {f["drift"]["peak_mb"]:>15,.0f} MB {verdict(f["drift"]["peak_mb"] < GOALS["peak_mb"]):>8}')
            if rows not in (1_000_000, 5_000_000):
                goal = f"{rows:,} rows: drift / scan (no goal at this size)"
                print(f'{goal:64} {f["drift_over_scan"]:>17.2f}x')
        if args.json: args.json.parent.mkdir(parents=True, exist_ok=True); args.json.write_text(json.dumps(figures, indent=1, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
