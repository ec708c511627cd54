"""The store under concurrent use: writers in several processes and readers at the same time."""
import json, subprocess, sys, textwrap, time

import pandas as pd

from wildproof.datasets import ingest, list_snapshots

# 300 commits to one table from 3 processes: enough contention to show lost commits (Store.append of wildproof f0935be
# fails about 3 runs in 4 with deltalake's CommitFailedError 'Failed to commit transaction: 15'), about 20 s on 2 cores
WRITERS, BATCHES, ROWS = 3, 100, 3

# Each writer waits for the `go` file (so all start together), appends BATCHES batches of ROWS events with
# distinct ids, and prints a JSON report: ids it wrote, and any exception (it never raises, so the report always arrives).
WRITER = textwrap.dedent('''
    import json, os, sys, time, traceback
    from pathlib import Path
    from wildproof.store import Store, utcnow
    root, go, w, batches, rows, how = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    out = dict(writer=w, ids=[], errors=[])
    try:
        store = Store(root)
        while not go.exists(): time.sleep(0.005)
        for b in range(batches):
            ids = [f'w{w}-b{b}-r{r}' for r in range(rows)]
            try:
                if how == 'event' and rows == 1: store.event('load-test', ids[0], actor=f'writer{w}', batch=b)
                else:
                    n = store.append('events', [dict(event_id=i, time=utcnow(), kind='load-test', subject=f'batch {b}',
                                                     actor=f'writer{w}', detail_json='{}') for i in ids])
                    assert n == rows, f'append returned {n}, expected {rows}'
                out['ids'] += ids
            except Exception as e: out['errors'].append(f'batch {b}: {type(e).__name__}: {e}')
    except Exception: out['errors'].append(traceback.format_exc())
    print(json.dumps(out))
''')

INGESTER = textwrap.dedent('''
    import json, sys, time, traceback
    from pathlib import Path
    from wildproof.store import Store
    from wildproof.datasets import ingest
    root, go, src = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    try:
        store = Store(root)
        while not go.exists(): time.sleep(0.005)
        s = ingest(store, 'loans', src)
        print(json.dumps(dict(snapshot_id=s.snapshot_id, existed=s.existed, error=None)))
    except Exception: print(json.dumps(dict(error=traceback.format_exc())))
''')


def _spawn(script, *args):
    return subprocess.Popen([sys.executable, '-c', script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _reports(procs, timeout=90):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, f'process failed ({p.returncode}): {stderr[-3000:]}'
        lines = [l for l in stdout.splitlines() if l.startswith('{')]
        assert lines, f'no report from process: stdout={stdout[-2000:]!r} stderr={stderr[-3000:]!r}'
        out.append(json.loads(lines[-1]))
    return out


def test_concurrent_writers_and_reader(store, tmp_path):
    go = tmp_path / 'go'
    procs = [_spawn(WRITER, store.root, go, w, BATCHES, ROWS, 'append') for w in range(WRITERS)]
    time.sleep(1.5)  # let the writers import wildproof and open the store
    go.touch()
    counts, read_errors, t0 = [], [], time.time()
    while any(p.poll() is None for p in procs) and time.time() - t0 < 60:
        try: counts.append(int(store.sql("select count(*) as n from events where kind = 'load-test'").n.iloc[0]))
        except Exception as e: read_errors.append(f'{type(e).__name__}: {e}')
    reports = _reports(procs)
    counts.append(int(store.sql("select count(*) as n from events where kind = 'load-test'").n.iloc[0]))

    assert [r['errors'] for r in reports] == [[]] * WRITERS, 'a writer failed'
    assert read_errors == [], f'{len(read_errors)} of {len(counts) + len(read_errors)} reads failed, first: {read_errors[:3]}'
    assert len(counts) > 3, 'the reader should have read while the writers wrote'
    assert len({c for c in counts if 0 < c < WRITERS * BATCHES * ROWS}) > 1, f'no read saw the writes in progress: {counts}'
    print(f'{len(counts)} reads, {len(set(counts))} distinct counts')
    assert all(a <= b for a, b in zip(counts, counts[1:])), f'counts went down: {counts}'
    assert counts[-1] == WRITERS * BATCHES * ROWS
    written = [i for r in reports for i in r['ids']]
    expected = {f'w{w}-b{b}-r{r}' for w in range(WRITERS) for b in range(BATCHES) for r in range(ROWS)}
    assert sorted(written) == sorted(expected)
    stored = store.sql("select event_id from events where kind = 'load-test'").event_id.tolist()
    assert len(stored) == len(set(stored)), 'rows duplicated'
    assert set(stored) == expected, f'lost: {sorted(expected - set(stored))[:5]}; unexpected: {sorted(set(stored) - expected)[:5]}'
    # each writer's batches arrive whole and in its order
    by = store.sql("select event_id, actor from events where kind = 'load-test'")
    assert by.groupby('actor').size().to_dict() == {f'writer{w}': BATCHES * ROWS for w in range(WRITERS)}


def test_concurrent_events(store, tmp_path):
    "Store.event from several processes at once: one row per event, none lost."
    go = tmp_path / 'go'
    procs = [_spawn(WRITER, store.root, go, w, 15, 1, 'event') for w in range(WRITERS)]
    time.sleep(1.0)
    go.touch()
    reports = _reports(procs)
    assert [r['errors'] for r in reports] == [[]] * WRITERS
    ev = store.sql("select actor, detail_json from events where kind = 'load-test'")
    assert len(ev) == WRITERS * 15
    got = sorted((a, json.loads(d)['batch']) for a, d in zip(ev.actor, ev.detail_json))
    assert got == sorted((f'writer{w}', b) for w in range(WRITERS) for b in range(15))


def test_concurrent_ingest_of_same_content_gives_one_snapshot(store, tmp_path):
    src = tmp_path / 'loans.csv'
    pd.DataFrame({'id': range(2000), 'amount': [i * 1.5 for i in range(2000)], 'city': ['a', 'b'] * 1000}).to_csv(src, index=False)
    go = tmp_path / 'go'
    procs = [_spawn(INGESTER, store.root, go, src) for _ in range(3)]
    time.sleep(1.5)
    go.touch()
    reports = _reports(procs)
    assert [r['error'] for r in reports] == [None] * 3
    ids = {r['snapshot_id'] for r in reports}
    assert len(ids) == 1, ids
    assert sorted(r['existed'] for r in reports) == [False, True, True], 'exactly one process stores the content'
    cat = list_snapshots(store, 'loans')
    assert cat.snapshot_id.tolist() == list(ids)
    assert int(cat.rows.iloc[0]) == 2000
    # the ingest from this process finds it as well
    again = ingest(store, 'loans', src)
    assert again.existed and again.snapshot_id in ids
    assert [p.name for p in (store.root / 'data' / 'loans').iterdir()] == [again.content_hash[:16]]  # one copy of the data


def test_threads_sharing_one_store(store):
    "One Store object used from several threads at once (as a web server would): ingest, validate, append and query."
    import threading
    import numpy as np
    from wildproof.contracts import infer_contract, validate
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({'id': np.arange(2000), 'amount': rng.random(2000), 'kind': rng.choice(list('abc'), 2000)})
    contract = infer_contract(store, ingest(store, 'ref', ref), key='id').register(store)
    errors, results = [], {}

    def work(w):
        try:
            for k in range(5):
                start = 10_000 * (w + 1) + 100 * k
                b = pd.DataFrame({'id': np.arange(start, start + 100), 'amount': np.linspace(0, 1, 100), 'kind': ['a'] * 99 + ['zz']})
                v = validate(store, ingest(store, f'batch{w}', b), contract)
                results[(w, k)] = (v.status, v.rows_quarantined, len(v.quarantined()), len(v.accepted()))
                store.event('thread-test', f'{w}-{k}')
                store.sql("select count(*) from events")
        except Exception as e: errors.append(f'{type(e).__name__}: {e}')

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads: t.start()
    for t in threads: t.join(timeout=60)
    assert errors == []
    assert results == {(w, k): ('accepted', 1, 1, 99) for w in range(4) for k in range(5)}
    assert store.sql("select count(*) as n from events where kind = 'thread-test'").n.iloc[0] == 20
    assert store.sql("select count(*) as n from validations").n.iloc[0] == 20
    assert store.sql("select count(*) as n, count(distinct row_key) as k from quarantine").iloc[0].tolist() == [20, 20]
