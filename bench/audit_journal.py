#!/usr/bin/env python
"""Benchmark: the audit journal (`AuditJournal`) against the Delta group commit (`AuditWriter`), single records, same run.

    .venv/bin/python bench/audit_journal.py --store-from /tmp/used     # a copy of a used store (the demo's: 157k records)
    .venv/bin/python bench/audit_journal.py                            # a fresh store
    .venv/bin/python bench/audit_journal.py --seconds 1 --rounds 1     # a quick smoke run

What it does, in a temporary folder deleted at the end:

0. Setup. The store: a copy of `--store-from` (never written itself), or a fresh one. The records: the last 200 online
   records of the copy's `predictions` table (as the service wrote them; seq and hashes dropped), or 200 made-up records
   of the same shape for a fresh store.
1. Format. One journal entry of 1 and of 100 records: serialized and read back as an Arrow IPC stream (what the journal
   writes) and as JSON lines of the same values (read back into the table's Arrow types), microseconds per entry.
2. Writers. For 1 and for `--threads` threads, each calling `write()` with one record after another for `--seconds`:
   an `AuditWriter` (a Delta commit per group), then an `AuditJournal` (an fsynced journal entry per group; its drain
   into the table every `[audit] drain_seconds` runs meanwhile, in the same process), `--rounds` times, interleaved.
   Records/s, `write()` latency p50/p99 in ms, records per commit; the journal's figures as ratios to the writer's of
   the same round. `close()` of the journal (the last drain) is timed apart.
3. Processes. `--processes` processes (default 2) of `--threads` / `--processes` threads each, started together, as uvicorn
   worker processes share one store: an `AuditWriter` in each, then an `AuditJournal` in each (one chain, one journal).
4. The chain: `verify` of the whole log after the runs.

It never asserts a timing; it prints the figures and the ratios and exits 0.
"""
from __future__ import annotations
import argparse, json, os, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_commit   # noqa: E402

from wildproof.audit import SCHEMA, AuditJournal, AuditWriter, _entries, _entry, verify   # noqa: E402
from wildproof.store import Store, as_table, utcnow   # noqa: E402


def sample_records(store: Store, n: int = 200) -> pa.Table:
    "The last `n` online records of the store, seq and hashes dropped; made-up ones of the same shape when it has none."
    t = store.sql('select * from predictions where inputs_json is not null order by seq desc limit $n', dict(n=n))
    if not len(t):
        t = [dict(request_id=f'bench-{i}', created_at=utcnow(), source='rest', model='credit_risk', version='1', route='champion',
                  entity_key=str(10_000 + i), score=0.01 * (i % 100), decision='approve', review=False,
                  inputs_json=json.dumps({'application_id': 10_000 + i, 'income': 52_000.0 + i, 'loan_amount': 12_000.0, 'region': 'north',
                                          'employment': 'salaried', 'age_band': '35-44', 'term_months': 36}),
                  features_json=json.dumps({'income': 52_000.0 + i, 'loan_to_income': 0.23, 'payment_to_income': 0.01}), latency_ms=3.0)
             for i in range(n)]
    t = as_table(SCHEMA, t, 'predictions')
    for c in ('seq', 'prev_hash', 'hash'): t = t.set_column(SCHEMA.get_field_index(c), c, pa.nulls(t.num_rows, SCHEMA.field(c).type))
    return t


def per_call_us(f, seconds: float = 0.3) -> float:
    f(); n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds: f(); n += 1
    return (time.perf_counter() - t0) / n * 1e6


def formats(recs: pa.Table):
    print('\n1. format of a journal entry, microseconds (serialize / read back into the table\'s Arrow types)')
    for n in (1, 100):
        t = recs.slice(0, n)
        b = _entry(t)
        ipc_w, ipc_r = per_call_us(lambda: _entry(t)), per_call_us(lambda: _entries(b))
        rows = t.to_pylist()
        lines = '\n'.join(json.dumps(r, default=str) for r in rows)
        js_w = per_call_us(lambda: '\n'.join(json.dumps(r, default=str) for r in t.to_pylist()))
        js_r = per_call_us(lambda: as_table(SCHEMA, [json.loads(x) for x in lines.split('\n')], 'predictions'))
        print(f'   {n:3} record(s): Arrow IPC {ipc_w:7.0f} / {ipc_r:7.0f} us, {len(b):7,} bytes;   JSON lines {js_w:7.0f} / {js_r:7.0f} us, {len(lines):7,} bytes')


def run(make, recs: pa.Table, threads: int, seconds: float) -> dict:
    "`threads` threads writing single records to the writer `make()` makes, for `seconds`."
    w = make()
    one = [recs.slice(i, 1) for i in range(recs.num_rows)]
    lats, start, stop_at = [[] for _ in range(threads)], threading.Barrier(threads + 1), [0.0]
    def go(j):
        start.wait()
        k = j * 25
        while time.perf_counter() < stop_at[0]:
            t = time.perf_counter(); w.write(one[k % len(one)]); lats[j].append(time.perf_counter() - t); k += 1
    ths = [threading.Thread(target=go, args=(j,)) for j in range(threads)]
    for th in ths: th.start()
    t0 = time.perf_counter(); stop_at[0] = t0 + seconds; start.wait()
    for th in ths: th.join()
    wall = time.perf_counter() - t0
    c = time.perf_counter(); w.close(); closing = time.perf_counter() - c
    lat = np.array([x for l in lats for x in l]) * 1000
    return dict(records=len(lat), records_per_s=len(lat) / wall, p50=float(np.percentile(lat, 50)), p99=float(np.percentile(lat, 99)),
                per_commit=len(lat) / max(w.commits, 1), close_s=closing)


def child(args):
    "One process of the multi-process measurement: its threads write single records from --start-at to --stop-at (wall clock)."
    store = Store(args.child_root)
    recs = sample_records(store)
    one = [recs.slice(i, 1) for i in range(recs.num_rows)]
    w = AuditJournal(store) if args.child == 'journal' else AuditWriter(store)
    lats = [[] for _ in range(args.child_threads)]
    def go(j):
        k = j * 25 + os.getpid()
        while time.time() < args.start_at: time.sleep(0.001)
        while time.time() < args.stop_at:
            t = time.perf_counter(); w.write(one[k % len(one)]); lats[j].append(time.perf_counter() - t); k += 1
    ths = [threading.Thread(target=go, args=(j,)) for j in range(args.child_threads)]
    for th in ths: th.start()
    for th in ths: th.join()
    w.close()
    Path(args.child_out).write_text(json.dumps([x for l in lats for x in l]))


def in_processes(root: Path, kind: str, processes: int, threads: int, seconds: float) -> dict:
    "`processes` processes of `threads` threads each writing single records for `seconds`, started together."
    start = time.time() + 8.0   # time to import and open the store, on a busy machine
    outs = [root.parent / f'{kind}-{k}.json' for k in range(processes)]
    ps = [subprocess.Popen([sys.executable, __file__, '--child', kind, '--child-root', str(root), '--child-threads', str(threads),
                            '--start-at', str(start), '--stop-at', str(start + seconds), '--child-out', str(o)]) for o in outs]
    for p in ps: p.wait()
    if any(p.returncode for p in ps) or time.time() < start: raise SystemExit(f'a {kind} process failed')
    lat = np.array([x for o in outs for x in json.loads(o.read_text())]) * 1000
    return dict(records=len(lat), records_per_s=len(lat) / seconds, p50=float(np.percentile(lat, 50)), p99=float(np.percentile(lat, 99)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--store-from', type=Path, help='a store to copy and measure on (e.g. the demo\'s); default: a fresh store')
    ap.add_argument('--seconds', type=float, default=3.0, help='seconds per measurement (default 3)')
    ap.add_argument('--threads', type=int, default=8, help='threads of the concurrent measurement (default 8)')
    ap.add_argument('--rounds', type=int, default=2, help='rounds, each measuring the writer then the journal (default 2)')
    ap.add_argument('--processes', type=int, default=2, help='processes of the multi-process measurement (default 2; 0: none)')
    for a, typ in (('--child', str), ('--child-root', str), ('--child-threads', int), ('--start-at', float), ('--stop-at', float), ('--child-out', str)):
        ap.add_argument(a, type=typ, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child: return child(args)
    tmp = Path(tempfile.mkdtemp(prefix='wildproof-bench-journal-'))
    try:
        if args.store_from:
            shutil.copytree(args.store_from, tmp / 'store', ignore=shutil.ignore_patterns('*.lock'))
        store = Store(tmp / 'store')
        n0 = store.sql('select count(*) as n from predictions').n.iloc[0]
        recs = sample_records(store)
        print(f'audit journal benchmark, commit {git_commit()}; store: {args.store_from or "fresh"} ({n0:,} audit records, '
              f'Delta version {store.version("predictions")}); {recs.nbytes / recs.num_rows:,.0f} bytes a record in Arrow')
        formats(recs)
        print(f'\n2. single records, write() from 1 and {args.threads} threads, {args.seconds:g} s each, {args.rounds} round(s)')
        print(f'   {"":34} {"records/s":>10} {"p50 ms":>8} {"p99 ms":>8} {"per commit":>11}   {"x writer: records/s":>20} {"p50":>6} {"p99":>6}')
        figures = []
        for r in range(args.rounds):
            for threads in (1, args.threads):
                a = run(lambda: AuditWriter(store), recs, threads, args.seconds)
                j = run(lambda: AuditJournal(store), recs, threads, args.seconds)
                figures.append((threads, a, j))
                for name, x in ((f'AuditWriter, {threads} thread(s)', a), (f'AuditJournal, {threads} thread(s)', j)):
                    ratio = (f'   {x["records_per_s"] / a["records_per_s"]:20.1f} {x["p50"] / a["p50"]:6.2f} {x["p99"] / a["p99"]:6.2f}'
                             if x is j else '')
                    print(f'   {name:34} {x["records_per_s"]:10,.0f} {x["p50"]:8.2f} {x["p99"]:8.2f} {x["per_commit"]:11.1f}{ratio}')
                print(f'   {"":34} (the journal\'s close(), its last drain: {j["close_s"] * 1000:.0f} ms)')
        for threads in (1, args.threads):
            xs = [(a, j) for t, a, j in figures if t == threads]
            print(f'   {threads} thread(s), over the rounds: the journal writes {min(j["records_per_s"] / a["records_per_s"] for a, j in xs):.1f}x to '
                  f'{max(j["records_per_s"] / a["records_per_s"] for a, j in xs):.1f}x the records/s of the writer, p99 '
                  f'{min(j["p99"] / a["p99"] for a, j in xs):.2f}x to {max(j["p99"] / a["p99"] for a, j in xs):.2f}x its p99')
        if args.processes:
            per = max(args.threads // args.processes, 1)
            print(f'\n3. {args.processes} processes of {per} thread(s), single records, {args.seconds:g} s, {args.rounds} round(s)')
            for r in range(args.rounds):
                a = in_processes(store.root, 'writer', args.processes, per, args.seconds)
                j = in_processes(store.root, 'journal', args.processes, per, args.seconds)
                for name, x in (('AuditWriter in each', a), ('AuditJournal in each', j)):
                    ratio = f'   {x["records_per_s"] / a["records_per_s"]:20.1f} {x["p50"] / a["p50"]:6.2f} {x["p99"] / a["p99"]:6.2f}' if x is j else ''
                    print(f'   {name:34} {x["records_per_s"]:10,.0f} {x["p50"]:8.2f} {x["p99"]:8.2f} {"":>11}{ratio}')
        t = time.perf_counter(); v = verify(store)
        print(f'\n4. verify() of the {v.records:,} records: chain {"intact" if v.ok else "BROKEN"} ({time.perf_counter() - t:.1f} s); '
              f'journal left: {v.journal} records; Delta version {store.version("predictions")}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
