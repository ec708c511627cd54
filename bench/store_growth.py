#!/usr/bin/env python
"""Benchmark: the cost of one audit commit as a table grows one record at a time: as shipped, without compaction, and with delta-rs's writer.

    .venv/bin/python bench/store_growth.py                  # 1,500 commits each (about 4 minutes on 2 cores)
    .venv/bin/python bench/store_growth.py --commits 400    # a quick run (about 40 s)

An online service commits one record per request when its clients come one at a time. Each commit adds a data file
and a log entry to the `predictions` Delta table, and delta-rs's work per commit grows with both. The store compacts a
table every `wildproof.store.COMPACT_EVERY` versions (docs/decisions/0009). In one run, in temporary folders deleted at
the end, this script makes `--commits` calls of `wildproof.audit.append_records` with one real-sized record each:

1. on a store as shipped (compaction on, wildproof's own blind appends, docs/decisions/0010);
2. on a store whose compaction is switched off for the run (the baseline of 0009);
3. on a store that writes through delta-rs's `write_deltalake`, with compaction (the writer before 0010).

It prints the median and 95th percentile of each stretch of `--every` commits, and the ratio of the last stretch to the
first. The goal: as shipped, the last stretch costs at most 1.25x the first. It never fails on a timing: it prints
PASS or FAIL and exits 0.
"""
from __future__ import annotations

import os
os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')

import argparse, json, shutil, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import wildproof.store as store_mod
from wildproof.audit import append_records, verify
from wildproof.store import Store

GOAL = 1.25


def record(i: int) -> dict:
    "One online answer as the service records it: inputs and features as JSON, about 1 KB."
    inputs = dict(application_id=i, applied_at='2025-03-01T10:00:00Z', income=52000.0 + i, loan_amount=18000.0, term_months=48,
                  age=37, employment_years=6.5, credit_score=712, region='north', purpose='car', channel='web', prior_defaults=0)
    return dict(request_id=f'req-{i:08d}', created_at=datetime.now(timezone.utc), source='rest', model='credit_risk', version='1',
                route='champion', entity_key=str(i), event_time=datetime(2025, 3, 1, tzinfo=timezone.utc), score=0.12, decision='approve',
                review=False, inputs_json=json.dumps(inputs), features_json=json.dumps({**inputs, 'debt_to_income': 0.35}),
                latency_ms=12.5, batch_size=1)


MODES = {'shipped': 'as shipped   ', 'off': 'no compaction', 'delta-rs': 'delta-rs     '}


def run(root: Path, commits: int, every: int, mode: str) -> list[list[float]]:
    store = Store(root)
    old, plain = store_mod.COMPACT_EVERY, store_mod._plain
    if mode == 'off': store_mod.COMPACT_EVERY = 10 ** 12
    if mode == 'delta-rs': store_mod._plain = lambda dt, table: False   # every append goes to write_deltalake
    try:
        lat = []
        for i in range(commits):
            t = time.perf_counter(); append_records(store, [record(i)]); lat.append((time.perf_counter() - t) * 1000)
            if (i + 1) % every == 0:
                s = lat[-every:]
                print(f'   {MODES[mode]}  commits {i + 2 - every:>5,} to {i + 1:>5,}: '
                      f'median {np.median(s):6.1f} ms, p95 {np.percentile(s, 95):6.1f} ms; '
                      f'{len(store._delta("predictions").file_uris()):>5,} data files', flush=True)
        v = verify(store)
        print(f'   {v}')
        return [lat[a:a + every] for a in range(0, commits - commits % every, every)]
    finally:
        store_mod.COMPACT_EVERY, store_mod._plain = old, plain


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--commits', type=int, default=1500, help='one-record commits per store (default 1,500)')
    ap.add_argument('--every', type=int, default=250, help='commits per reported stretch (default 250)')
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix='wildproof-bench-growth-'))
    try:
        print(f'{args.commits:,} one-record audit commits on a new store: as shipped (compaction every {store_mod.COMPACT_EVERY} versions), '
              f'without compaction, and with delta-rs\'s writer; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}')
        runs = {m: run(work / m, args.commits, args.every, m) for m in MODES}
        first, last = ({m: np.median(r[i]) for m, r in runs.items()} for i in (0, -1))
        r = {m: last[m] / first[m] for m in MODES}
        print(f'\nlast stretch against the first, medians: as shipped {r["shipped"]:.2f}x (goal <= {GOAL:g}x): {"PASS" if r["shipped"] <= GOAL else "FAIL"}; '
              f'without compaction {r["off"]:.2f}x; with delta-rs\'s writer {r["delta-rs"]:.2f}x')
        print(f'last stretch, as shipped against: without compaction {last["shipped"] / last["off"]:.2f}x, delta-rs\'s writer {last["shipped"] / last["delta-rs"]:.2f}x')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
