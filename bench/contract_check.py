#!/usr/bin/env python
"""Benchmark: wildproof's contract check of a large batch, next to a plain DuckDB scan of the same data.

    .venv/bin/python bench/contract_check.py                  # 10 million rows x 20 columns (the issue's size)
    .venv/bin/python bench/contract_check.py --rows 200000    # a quick smoke run

What it does, in one run:

1. Generates deterministic synthetic data with numpy (seeded): 20 columns = an int64 key `id`, a UTC timestamp
   `event_time`, 13 numeric columns (8 float, 5 integer) and 5 categorical text columns (5-20 categories each).
   The reference is the first `--ref-rows` rows (default 1 million) before any problem is injected; the batch is
   all `--rows` rows with a small, known set of problems injected (see `PROBLEMS`), so the check quarantines
   rows for real.
2. Ingests the reference and the batch with `wildproof.datasets.ingest` into a store (a temporary folder unless
   `--store` is given), infers the contract from the reference (key `id`, time column `event_time`) and
   registers it. Ingest time is reported separately; it is not part of the ratio.
3. Measures, alternating, `--repeats` times each (after one untimed warm-up scan):
   * scan:  the snapshot opened exactly as `validate()` opens it (`snapshot_dataset(store, snap)`, a pyarrow
            dataset over the Delta table's files, registered on a `store.connect([])` cursor) and one query that reads every
            value of the 20 data columns once: `SELECT min(c), max(c)` for every column. (`count(*)` alone would
            read no values at all, so it would not be a fair floor.)
   * check: `wildproof.contracts.validate(store, snapshot, contract)`, end to end: snapshot lookup, both SQL
            passes, writing the quarantine records, the validation row and the event.
   * native scan (for information): the same min/max query through DuckDB's own Parquet reader over the Delta
            table's files (`read_parquet(DeltaTable(path).file_uris(), can_have_nan=true)`; without
            `can_have_nan=true` DuckDB prunes row groups on min/max statistics that exclude NaN, and filters such as
            `isnan(x)` or `x > hi` miss NaN rows). The headline ratio does NOT use it: check and scan are compared
            over the same access path.
   Timings are wall-clock seconds (best and median) and CPU seconds of all threads. Peak RSS is measured apart,
   one call of each in a fresh process (this one's allocators keep memory freed by earlier calls): the high-water
   mark during the call (VmHWM, reset through /proc/self/clear_refs on Linux; getrusage otherwise) and the RSS
   before it.
4. Profiles one extra, instrumented `validate()` run: the time of each SQL statement it issues and of each store
   write, then DuckDB's per-operator profile of its heavy queries, and the same queries over the native reader.

It never asserts a timing: it prints the verdict (check <= 3 x scan: PASS, else MISS) and exits 0.
"""
from __future__ import annotations

import argparse, gc, json, os, platform, resource, shutil, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

from _common import git_commit

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable
from tqdm.auto import tqdm

import wildproof
from wildproof.contracts import infer_contract, validate
from wildproof.datasets import ROW, get_snapshot, ingest, list_snapshots, snapshot_dataset, snapshot_path
from wildproof.settings import load_settings
from wildproof.store import Store

GOAL = 3.0
DATASET = 'bench'
HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------------------------
# synthetic data

CATEGORIES = {  # 5 to 20 categories each
    'country': ['US', 'GB', 'DE', 'FR', 'ES', 'IT', 'NL', 'SE', 'PL', 'PT', 'IE', 'BE', 'AT', 'DK', 'FI', 'NO', 'CH', 'CZ', 'GR', 'RO'],
    'channel': ['web', 'app', 'store', 'phone', 'partner'],
    'device': ['ios', 'android', 'windows', 'macos', 'linux', 'tablet', 'tv', 'other'],
    'plan': [f'plan_{i:02d}' for i in range(12)],
    'segment': [f'segment_{c}' for c in 'abcdefghijklmno'],
}
UNSEEN = {'country': 'XX', 'channel': 'carrier_pigeon'}

# problems injected into the batch, per million rows: (column, kind, rule that must catch it)
PROBLEMS = {
    'amount_null': (20, 'amount', 'not_null'),        # nulls in a column the reference never leaves empty
    'score_high': (50, 'score', 'range'),             # far above the reference range
    'age_negative': (20, 'age', 'range'),             # below zero
    'ratio_nan': (20, 'ratio', 'finite'),             # NaN where the reference has none
    'country_unseen': (50, 'country', 'category'),    # a category the reference never saw
    'channel_unseen': (20, 'channel', 'category'),
    'duplicate_id': (30, 'id', 'unique_key'),         # a key seen earlier in the batch
    'future_time': (10, 'event_time', 'future'),      # after the validation time
}
INCOME_NULL_SHARE = 0.001  # 0.1 % nulls in the nullable `income`, as in the reference: allowed, not quarantined


def _rng(seed: int, i: int) -> np.random.Generator: return np.random.default_rng([seed, i])


def _clean_columns(rows: int, seed: int):
    """Yield (name, numpy array) of the clean data, one column at a time (categoricals as int codes).
    Long-tailed columns are clipped at values the 1-million-row reference reaches, so the only rows out of the
    inferred ranges are the injected ones (no accidental tail values at 10 million rows)."""
    r = lambda i: _rng(seed, i)
    yield 'id', 1_000_000_000 + np.arange(rows, dtype=np.int64)
    start = np.datetime64('2025-01-01T00:00:00', 'us').astype(np.int64)
    yield 'event_time', start + np.arange(rows, dtype=np.int64) * 2_000_000 + r(1).integers(0, 2_000_000, rows)
    yield 'amount', np.round(np.clip(r(2).lognormal(4.0, 1.0, rows), 0.5, 2_000.0), 2)
    yield 'income', np.round(np.clip(r(3).normal(55_000, 20_000, rows), 0, 130_000), 0)
    yield 'score', np.round(r(4).beta(2.0, 5.0, rows) * 1000, 1)
    yield 'ratio', r(5).random(rows)
    yield 'lat', r(6).uniform(-60, 70, rows)
    yield 'lon', r(7).uniform(-180, 180, rows)
    yield 'temp', np.round(np.clip(r(8).normal(15, 10, rows), -40, 50), 1)
    yield 'weight', np.clip(r(9).gamma(2.0, 30.0, rows), 0.1, 300).astype(np.float32)
    yield 'age', r(10).integers(18, 90, rows, dtype=np.int32)
    yield 'n_items', np.clip(r(11).poisson(3.0, rows), 0, 10).astype(np.int64)
    yield 'tenure_days', r(12).integers(0, 3650, rows, dtype=np.int64)
    yield 'clicks', np.clip(r(13).negative_binomial(2, 0.1, rows), 0, 120).astype(np.int64)
    yield 'visits', np.clip(r(14).poisson(12.0, rows), 0, 30).astype(np.int64)
    for j, (name, cats) in enumerate(CATEGORIES.items()):
        p = 1.0 / np.arange(1, len(cats) + 1); p /= p.sum()  # Zipf-like: a few common, a long tail
        yield name, r(20 + j).choice(len(cats), size=rows, p=p).astype(np.int32)


def _arrow(name: str, a: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    if name == 'event_time': return pa.array(a, pa.int64()).cast(pa.timestamp('us', tz='UTC'))
    if name in CATEGORIES:
        cats = CATEGORIES[name] + ([UNSEEN[name]] if name in UNSEEN else [])
        return pa.DictionaryArray.from_arrays(pa.array(a), pa.array(cats)).cast(pa.string())
    return pa.array(a, mask=mask)


def generate(rows: int, ref_rows: int, seed: int):
    "The reference table (clean first rows), the batch table (all rows, problems injected) and what was injected."
    rng = _rng(seed, 99)
    counts = {k: max(1, round(per_m * rows / 1e6)) for k, (per_m, _, _) in PROBLEMS.items()}
    # distinct row positions for every problem, so each quarantined row fails exactly one rule
    pos = rng.choice(np.arange(1000, rows) if rows > 10_000 else np.arange(1, rows), size=sum(counts.values()), replace=False)
    at, k0 = {}, 0
    for k, n in counts.items(): at[k], k0 = np.sort(pos[k0:k0 + n]), k0 + n
    dup_src = at['duplicate_id'] - rng.integers(1, 1000, len(at['duplicate_id'])).clip(max=at['duplicate_id'])
    dup_src = np.where(np.isin(dup_src, at['duplicate_id']), at['duplicate_id'] - 1, dup_src)  # copy from a row that keeps its key
    ref_cols, batch_cols = {}, {}
    null_income = _rng(seed, 98).random(rows) < INCOME_NULL_SHARE
    for name, a in tqdm(_clean_columns(rows, seed), total=20, desc=f'generate {rows:,} rows', unit='col', leave=False):
        mask = null_income if name == 'income' else None
        ref_cols[name] = _arrow(name, a[:ref_rows].copy(), None if mask is None else mask[:ref_rows].copy())
        if name == 'id': a[at['duplicate_id']] = a[dup_src]
        if name == 'event_time': a[at['future_time']] = np.datetime64('2031-06-01T12:00:00', 'us').astype(np.int64)
        if name == 'amount': mask = np.zeros(rows, bool); mask[at['amount_null']] = True
        if name == 'score': a[at['score_high']] = 25_000.0
        if name == 'age': a[at['age_negative']] = -1
        if name == 'ratio': a[at['ratio_nan']] = np.nan
        if name in UNSEEN: a[at[f'{name}_unseen']] = len(CATEGORIES[name])
        batch_cols[name] = _arrow(name, a, mask)
        del a
    injected = dict(counts, income_null=int(null_income.sum()))
    return pa.table(ref_cols), pa.table(batch_cols), injected


# --------------------------------------------------------------------------------------------------------------
# measuring

def _reset_peak() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        return True
    except OSError: return False


def _status_mb(field: str) -> float | None:
    try:
        for line in open('/proc/self/status'):
            if line.startswith(field + ':'): return int(line.split()[1]) / 1024
    except OSError: pass
    return None


def _peak_mb() -> float:
    "Peak RSS in MB since the last reset (VmHWM), or of the whole process (getrusage) where that cannot be reset."
    if (hwm := _status_mb('VmHWM')) is not None: return hwm
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / (1024 if sys.platform == 'darwin' else 1)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _measure(fn):
    "Wall seconds, CPU seconds (all threads of this process), peak RSS (MB) during the call and RSS before it, and fn's result."
    gc.collect(); pa.default_memory_pool().release_unused()
    _reset_peak(); base = _status_mb('VmRSS') or 0.0
    c, t = _cpu(), time.perf_counter(); out = fn(); dt, dc = time.perf_counter() - t, _cpu() - c
    return dt, dc, (_peak_mb(), base), out


def scan_sql(columns: list[str], source: str) -> str:
    q = lambda c: '"' + c.replace('"', '""') + '"'
    return 'SELECT ' + ', '.join(f'min({q(c)}), max({q(c)})' for c in columns) + f' FROM {source}'


def run_scan(store: Store, snap_id: str, columns: list[str]):
    "The plain scan over the access path validate() uses: snapshot_dataset() registered on a store.connect([]) cursor."
    con = store.connect([])
    try:
        con.register('batch', snapshot_dataset(store, snap_id))
        return con.execute(scan_sql(columns, 'batch')).fetchall()
    finally: con.close()


def parquet_files(store: Store, snap_id: str) -> list[str]:
    snap = get_snapshot(store, snap_id)
    return DeltaTable(snapshot_path(store, snap.dataset, snap.content_hash)).file_uris()


def run_native_scan(store: Store, snap_id: str, columns: list[str]):
    "The same query through DuckDB's own Parquet reader over the Delta table's files."
    con = store.connect([])
    try:
        files = parquet_files(store, snap_id)
        return con.execute(scan_sql(columns, f'read_parquet({files!r}, can_have_nan=true)')).fetchall()
    finally: con.close()


# --------------------------------------------------------------------------------------------------------------
# profiling one validate() run

def _label(sql: str) -> str:
    s = ' '.join(sql.split())
    if s.startswith('SELECT count(*) AS n,'): return 'pass 1a: null counts (aggregate)'
    if s.startswith('CREATE TEMP TABLE dups'): return 'pass 1b: duplicate keys (GROUP BY key)'
    if 'unnest(list_filter(' in s: return 'pass 2: failing (row, rule) pairs'
    if 'TRY_CAST' in s: return 'type probe'
    return 'other SQL: ' + s[:50]


class _Timed:
    "A proxy of a DuckDB connection or relation that logs the wall time of every call, by statement."
    def __init__(self, obj, log: list, label: str = 'connection', sqls: dict | None = None, mem: dict | None = None):
        self._obj, self._log, self._label, self._sqls, self._mem = obj, log, label, sqls, mem
    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        if not callable(attr): return attr
        def call(*a, **k):
            label = self._label
            if name in ('execute', 'sql') and a and isinstance(a[0], str):
                label = _label(a[0])
                self._sqls[label] = (a[0], k.get('params', a[1] if len(a) > 1 else None))
            elif name == 'register': label = 'register the snapshot dataset'
            elif name == 'close': label = 'close the cursor'
            base = _status_mb('VmRSS') or 0.0; _reset_peak()
            t = time.perf_counter(); r = attr(*a, **k)
            self._log.append((label, time.perf_counter() - t))
            self._mem[label] = max(self._mem.get(label, 0.0), _peak_mb() - base)
            if isinstance(r, (duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation)): return _Timed(r, self._log, label, self._sqls, self._mem)
            return r
        return call


def profile_validate(store: Store, snap_id: str, contract, settings):
    "Run validate() once with its connection and store writes timed; returns (total, [(part, seconds)], sqls, result, {statement: peak RSS growth MB})."
    log, sqls, mem = [], {}, {}
    real_connect, real_append, real_sql = store.connect, store.append, store.sql
    inside = []  # set while a store read or write runs: its own connection is part of that read or write
    def connect(tables=None):
        if inside: return real_connect(tables)
        t = time.perf_counter(); con = real_connect(tables); log.append(('open connection', time.perf_counter() - t))
        return _Timed(con, log, 'connection', sqls, mem)
    def timed(label, fn, *a, **k):
        inside.append(1); t = time.perf_counter()
        try: return fn(*a, **k)
        finally: log.append((label, time.perf_counter() - t)); inside.pop()
    append = lambda table, rows: timed(f'store write: {table}', real_append, table, rows)
    sql = lambda *a, **k: timed('store read: snapshot lookup', real_sql, *a, **k)
    store.connect, store.append, store.sql = connect, append, sql
    try:
        t = time.perf_counter(); res = validate(store, snap_id, contract, settings=settings); total = time.perf_counter() - t
    finally:
        del store.connect, store.append, store.sql
    parts = {}
    for label, dt in log: parts[label] = parts.get(label, 0.0) + dt
    parts['other: Python, Delta table open, bookkeeping'] = total - sum(parts.values())
    return total, sorted(parts.items(), key=lambda kv: -kv[1]), sqls, res, mem


def _walk(node, out, depth=0):
    name = node.get('operator_name') or node.get('operator_type') or node.get('type') or node.get('name')
    timing = node.get('operator_timing', node.get('timing'))
    rows = node.get('operator_cardinality', node.get('intermediate_rows'))
    if name and timing is not None: out.append((name, float(timing), rows, depth, (node.get('extra_info') or {}).get('Function', '')))
    for ch in node.get('children', []) + node.get('operator', []): _walk(ch, out, depth + 1)
    return out


def operator_profile(store: Store, setup, sql: str, params, workdir: Path):
    "Run sql on a new store cursor prepared by setup(con) with DuckDB's JSON profiler; returns (seconds, operators by time)."
    con = store.connect([])
    try:
        setup(con)
        out = workdir / f'profile-{time.time_ns()}.json'
        con.execute("PRAGMA enable_profiling='json'"); con.execute(f"PRAGMA profiling_output='{out}'")
        t = time.perf_counter(); con.execute(sql, params or {}).fetchall(); dt = time.perf_counter() - t
        con.execute('PRAGMA disable_profiling')
        ops = _walk(json.loads(out.read_text()), [])
        out.unlink(missing_ok=True)
        return dt, sorted(ops, key=lambda o: -o[1])
    finally: con.close()




def _fmt_s(xs): return f'{min(xs):7.2f} / {statistics.median(xs):7.2f}'


def _child(root: Path, kind: str, snap_id: str) -> int:
    "One call of `kind` (scan, check, native) in this fresh process; prints its RSS before and its peak RSS, in MB, as JSON."
    from wildproof.contracts import get_contract
    store = Store(root)
    cols = get_snapshot(store, snap_id).columns
    contract = get_contract(store, DATASET)
    empty = Path(tempfile.mkdtemp(prefix='wildproof-bench-child-')) / 'empty.ini'; empty.write_text('')
    settings = load_settings(empty, env={}); shutil.rmtree(empty.parent)
    fn = dict(scan=lambda: run_scan(store, snap_id, cols), native=lambda: run_native_scan(store, snap_id, cols),
              check=lambda: validate(store, snap_id, contract, settings=settings))[kind]
    gc.collect(); base = _status_mb('VmRSS') or 0.0
    _reset_peak(); fn()
    print(json.dumps(dict(kind=kind, before=base, peak=_peak_mb())))
    return 0


def child_peaks(root: Path, snap_id: str) -> dict:
    "Peak RSS of one scan, one check and one native scan, each in a fresh process: {kind: (peak MB, MB before the call)}."
    out = {}
    for kind in ('scan', 'check', 'native'):
        r = subprocess.run([sys.executable, __file__, '--store', str(root), '--child', kind, snap_id], capture_output=True, text=True)
        try: d = json.loads(r.stdout.strip().splitlines()[-1]); out[kind] = (d['peak'], d['before'])
        except (IndexError, ValueError, KeyError): print(f'peak RSS of {kind} in a fresh process: failed ({r.stderr.strip().splitlines()[-1:] or r.returncode})')
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rows', type=int, default=10_000_000, help='rows in the batch (default 10,000,000)')
    ap.add_argument('--ref-rows', type=int, default=1_000_000, help='rows in the reference the contract is inferred from (default 1,000,000; at most --rows)')
    ap.add_argument('--repeats', type=int, default=3, help='timed runs of each measurement (default 3)')
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--store', type=Path, default=None, help='keep the store here (e.g. bench/out/store) and reuse its snapshots on the next run; default: a temporary folder, deleted afterwards')
    ap.add_argument('--no-profile', action='store_true', help='skip the profile of where the check spends its time')
    ap.add_argument('--json', type=Path, default=None, help='also write the figures to this JSON file')
    ap.add_argument('--child', nargs=2, metavar=('KIND', 'SNAPSHOT'), help=argparse.SUPPRESS)  # internal: one call in a fresh process, for its peak RSS
    args = ap.parse_args(argv)
    if args.child: return _child(args.store, *args.child)
    rows, ref_rows = args.rows, min(args.ref_rows, args.rows)

    print(f'wildproof {wildproof.__version__} · duckdb {duckdb.__version__} · pyarrow {pa.__version__} · numpy {np.__version__} · '
          f'python {platform.python_version()} · {os.cpu_count()} CPUs · load average {", ".join(f"{x:.2f}" for x in os.getloadavg())} · commit {git_commit()}')
    tmp = None
    if args.store is None: tmp = Path(tempfile.mkdtemp(prefix='wildproof-bench-')); root = tmp / 'store'
    else: root = args.store
    work = Path(tempfile.mkdtemp(prefix='wildproof-bench-work-'))
    (work / 'empty.ini').write_text('')
    settings = load_settings(work / 'empty.ini', env={})  # the defaults, whatever settings.ini or WILDPROOF_* is around
    store = Store(root)
    print(f'store: {store.root}')
    figures = dict(rows=rows, columns=20, ref_rows=ref_rows, seed=args.seed, repeats=args.repeats, cpus=os.cpu_count(),
                   date=datetime.now(timezone.utc).isoformat(timespec='seconds'), commit=git_commit(), duckdb=duckdb.__version__, pyarrow=pa.__version__)
    try:
        # ---- data, ingest, contract
        note_ref, note_batch = f'synthetic reference rows={ref_rows} of {rows} seed={args.seed}', f'synthetic batch rows={rows} seed={args.seed}'
        have = list_snapshots(store, DATASET)
        have = dict(zip(have.source, have.snapshot_id)) if len(have) else {}
        if note_ref in have and note_batch in have:
            ref_id, batch_id, injected, ingest_s = have[note_ref], have[note_batch], None, None
            print(f'reusing the stored snapshots {ref_id} and {batch_id} (ingest not measured)')
        else:
            t = time.perf_counter()
            ref, batch, injected = generate(rows, ref_rows, args.seed)
            gen_s = time.perf_counter() - t
            print(f'generated {rows:,} rows x {batch.num_columns} columns ({batch.nbytes / 2**20:,.0f} MB in Arrow) in {gen_s:.1f} s')
            with tqdm(total=2, desc='ingest (hash + Delta write)', unit='snapshot', leave=False) as bar:
                ref_id = ingest(store, DATASET, ref, note=note_ref).snapshot_id; bar.update()
                t = time.perf_counter(); batch_id = ingest(store, DATASET, batch, note=note_batch).snapshot_id; ingest_s = time.perf_counter() - t; bar.update()
            print(f'ingested the batch {batch_id} in {ingest_s:.1f} s ({rows / ingest_s:,.0f} rows/s); reference {ref_id}')
            figures.update(generate_seconds=round(gen_s, 2), ingest_seconds=round(ingest_s, 2), injected=injected)
            del ref, batch; gc.collect(); pa.default_memory_pool().release_unused()
            figures['ingest_peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            print(f'peak RSS of generation and ingest: {figures["ingest_peak_rss_mb"]:,} MB')
        t = time.perf_counter()
        contract = infer_contract(store, ref_id, name=DATASET, key='id', time_column='event_time', settings=settings).register(store)
        print(f'inferred and registered contract {contract.name} v{contract.version} from {ref_id} in {time.perf_counter() - t:.1f} s')
        snap = get_snapshot(store, batch_id)
        columns = snap.columns
        files = parquet_files(store, batch_id)
        size = sum(Path(f.removeprefix('file://')).stat().st_size for f in files)
        print(f'batch: {snap.rows:,} rows x {len(columns)} columns (+ {ROW}); {len(files)} Parquet file(s), {size / 2**20:,.0f} MB on disk')
        figures.update(parquet_files=len(files), parquet_mb=round(size / 2**20))

        # ---- timings
        run_scan(store, batch_id, columns); run_native_scan(store, batch_id, columns)  # warm-up: the files are in the page cache
        times = {'scan': [], 'check': [], 'native': []}; cpus = {k: [] for k in times}
        result, load_before = None, os.getloadavg()[0]
        for i in tqdm(range(args.repeats), desc='timing scan / check / native scan', unit='round', leave=False):
            for k, fn in (('scan', lambda: run_scan(store, batch_id, columns)),
                          ('check', lambda: validate(store, batch_id, contract, settings=settings)),
                          ('native', lambda: run_native_scan(store, batch_id, columns))):
                dt, dc, peak, out = _measure(fn)
                times[k].append(dt); cpus[k].append(dc)
                if k == 'check': result = out
        scan_b, check_b, native_b = min(times['scan']), min(times['check']), min(times['native'])
        load_after = os.getloadavg()[0]
        figures.update(load_before=load_before, load_after=load_after)
        ratio, ratio_med = check_b / scan_b, statistics.median(times['check']) / statistics.median(times['scan'])
        verdict = 'PASS' if ratio <= GOAL else 'MISS'

        failing = {f'{r["column"]}.{r["rule"]}': r['failed'] for r in result.rules if r['failed']}
        print(f'\ncheck result: {result.status}; {result.rows_in:,} in, {result.rows_accepted:,} accepted, {result.rows_quarantined:,} quarantined '
              f'({result.quarantine_share:.4%}); {len(result.rules)} rules, failing: {failing}')
        if injected:
            expect = {}
            for k, (_, col, rule) in PROBLEMS.items(): expect[f'{col}.{rule}'] = expect.get(f'{col}.{rule}', 0) + injected[k]
            same = expect == failing and sum(expect.values()) == result.rows_quarantined
            print(f'injected: {injected}; expected failing rules {expect} -> '
                  f'{"quarantine exactly as expected" if same else "the quarantine DIFFERS from what was injected"}')
        w = 26
        fresh = child_peaks(store.root, batch_id)  # memory: one call each in a fresh process (allocators here keep freed memory)
        print(f'\n{"":{w}} {"wall s best / median":>22} {"CPU s best":>11} {"rows/s (best)":>15} {"peak RSS MB (before)":>21}')
        for k, name in (('scan', 'scan (pyarrow dataset)'), ('check', 'contract check'), ('native', 'scan (read_parquet)')):
            pk, base = fresh.get(k, (float('nan'), float('nan')))
            print(f'{name:{w}} {_fmt_s(times[k]):>22} {min(cpus[k]):>11.2f} {rows / min(times[k]):>15,.0f} {f"{pk:,.0f} ({base:,.0f})":>21}')
        cpu_ratio = min(cpus['check']) / min(cpus['scan'])
        print(f'\n{"rows":>12} {"columns":>8} {"scan s":>8} {"check s":>8} {"check/scan":>11} {"goal":>6} {"verdict":>8}')
        print(f'{rows:>12,} {len(columns):>8} {scan_b:>8.2f} {check_b:>8.2f} {ratio:>10.2f}x {"<= 3x":>6} {verdict:>8}')
        print(f'(best of {args.repeats}; medians give {ratio_med:.2f}x; CPU time gives {cpu_ratio:.2f}x; 1-minute load average {load_before:.2f} before the timings, {load_after:.2f} after. Same access path: snapshot_dataset() registered on a store cursor. '
              f'For information, check / native read_parquet scan = {check_b / native_b:.2f}x.)')
        figures.update(scan_cpu_seconds=cpus['scan'], check_cpu_seconds=cpus['check'], native_cpu_seconds=cpus['native'], ratio_cpu=round(cpu_ratio, 3))
        figures.update(scan_seconds=times['scan'], check_seconds=times['check'], native_scan_seconds=times['native'],
                       peak_rss_mb_and_before_fresh_process={k: [round(x) for x in v] for k, v in fresh.items()},
                       ratio_best=round(ratio, 3), ratio_median=round(ratio_med, 3), goal=GOAL, verdict=verdict,
                       rows_quarantined=result.rows_quarantined, rules=len(result.rules), failing=failing)

        # ---- profile
        if not args.no_profile:
            total, parts, sqls, _, mem = profile_validate(store, batch_id, contract, settings)
            print(f'\nwhere one validate() run spends its time ({total:.2f} s, instrumented; scan best {scan_b:.2f} s):')
            for label, dt in parts:
                print(f'  {label:44} {dt:7.2f} s  {dt / total:6.1%}  {dt / scan_b:5.2f}x scan' + (f'  peak RSS +{mem[label]:,.0f} MB' if mem.get(label, 0) >= 1 else ''))
            figures['profile_peak_rss_growth_mb'] = {k: round(v) for k, v in mem.items()}
            figures['profile'] = {label: round(dt, 3) for label, dt in parts}
            pyarrow_path = lambda con: con.register('batch', snapshot_dataset(store, batch_id))
            native_path = lambda con: con.execute(f'CREATE OR REPLACE TEMP VIEW batch AS SELECT * FROM read_parquet({files!r}, can_have_nan=true)').fetchall()
            figures['operators'], figures['native_path'] = {}, {}
            for label in ('pass 1a: null counts (aggregate)', 'pass 1b: duplicate keys (GROUP BY key)', 'pass 2: failing (row, rule) pairs'):
                if label not in sqls: continue
                sql, params = sqls[label]
                def setup(con, path=pyarrow_path, label=label):
                    path(con)
                    if label.startswith('pass 2') and 'LEFT JOIN dups' in sql: con.execute(sqls['pass 1b: duplicate keys (GROUP BY key)'][0]).fetchall()
                dt, ops = operator_profile(store, setup, sql, params, work)
                dtn, _ = operator_profile(store, lambda con, label=label: setup(con, native_path, label), sql, params, work)
                print(f'\n  {label}: {dt:.2f} s over the pyarrow dataset, {dtn:.2f} s over read_parquet; busiest operators (DuckDB profiler, summed over threads):')
                for name, t, n, depth, fn in ops[:5]: print(f'    {name + (" " + fn if fn else ""):36} {t:7.2f} s  {n if n is not None else "":>12} rows out')
                figures['operators'][label] = [(name, round(t, 3), n) for name, t, n, _, _ in ops[:6]]
                figures['native_path'][label] = round(dtn, 3)
            # the whole check's SQL over the native reader (what validate() would cost if it used read_parquet)
            def native_check():
                con = store.connect([]); native_path(con)
                for label in ('pass 1a: null counts (aggregate)', 'pass 1b: duplicate keys (GROUP BY key)'):
                    if label in sqls: con.execute(sqls[label][0]).fetchall()
                sql, params = sqls['pass 2: failing (row, rule) pairs']
                try: return con.sql(sql, params=params).to_arrow_table()
                finally: con.close()
            nc = []
            for _ in range(args.repeats):
                dt, _, _, fails = _measure(native_check); nc.append(dt)
            got = np.bincount(fails['i'].to_numpy(), minlength=len(result.rules)).tolist() if fails.num_rows else [0] * len(result.rules)
            print(f'\n  validate()\'s three SQL statements over read_parquet: best {min(nc):.2f} s = {min(nc) / native_b:.2f}x the read_parquet scan, '
                  f'{min(nc) / scan_b:.2f}x the pyarrow-dataset scan; '
                  + ('the same failing (row, rule) counts' if got == [0 if r['rule'] == 'unique_key' else r['failed'] for r in result.rules]
                     else 'DIFFERENT failing (row, rule) counts') + ' (duplicate keys, found by their own join, left out)')
            figures['native_check_sql_seconds'] = nc

        if args.json: args.json.parent.mkdir(parents=True, exist_ok=True); args.json.write_text(json.dumps(figures, indent=1, default=str))
        print(f'\nverdict: contract check of {rows:,} rows x {len(columns)} columns = {ratio:.2f}x a plain DuckDB scan (goal <= {GOAL:g}x): {verdict}')
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if tmp: shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
