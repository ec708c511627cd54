"""The audit journal (`AuditJournal`) under concurrency, crashes and tampering, judged from the shell (`wildproof audit verify`).

Writers run in processes of their own, as the service's worker processes do; each prints the request ids of the records
it was told are written (its futures resolved), so a test knows what was acknowledged before a kill. Crashes at an exact
stage come from WILDPROOF_AUDIT_FAULT (the journal calls os._exit there, which is kill -9 as far as the files can tell);
one test kills a writer under load with a real SIGKILL.
"""
import json, os, signal, subprocess, sys, textwrap, time
from collections import Counter

import pytest

from tests.test_audit_faults import ENV, cli
from wildproof.audit import CURRENT, _entries, _journal_dir, verify
from wildproof.store import Store

WRITER = textwrap.dedent('''
    import json, os, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta
    from wildproof.audit import AuditJournal, append_records, drain
    from wildproof.store import Store, utcnow

    mode, root, prefix, n, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    fault, fault_after = os.environ.pop('FAULT', None), int(os.environ.get('FAULT_AFTER', '0'))
    store, out, done = Store(root), threading.Lock(), [0]

    def records(rid, k):
        return [dict(request_id=rid, created_at=utcnow() - timedelta(days=float(os.environ.get('AGE_DAYS', '0'))), source='rest', model='credit_risk', version='1', route=('champion', 'shadow')[j],
                     entity_key=rid, score=0.25, decision='approve' if j else 'decline', review=False,
                     inputs_json=json.dumps({'application_id': rid}), latency_ms=1.0) for j in range(k)]

    def acknowledged(rid):
        with out:
            sys.stdout.write(rid + '\\n'); sys.stdout.flush()
            done[0] += 1
            if fault and done[0] == fault_after: os.environ['WILDPROOF_AUDIT_FAULT'] = fault   # the next write (or drain) dies there

    if mode == 'batch':
        for i in range(n):
            append_records(store, records(f'{prefix}-{i}', 1)); acknowledged(f'{prefix}-{i}')
        sys.exit(0)
    j = AuditJournal(store, drain_seconds=float(os.environ.get('DRAIN_SECONDS', '0.05')))
    def one(i):
        rid = f'{prefix}-{i}'
        k = 2 if i % 5 == 0 else 1   # a request with its shadow answer: one link of two records
        j.write(records(rid, k), groups=[k])
        acknowledged(rid)
    with ThreadPoolExecutor(threads) as ex: list(ex.map(one, range(n)))
    if os.environ.get('THEN') == 'drain': drain(store)
    if os.environ.get('THEN') != 'exit': j.close()   # 'exit': leave without draining, as a killed service would
''')


def writer(store, mode, prefix, n, threads=1, **env):
    "A writer process (not waited for); `env`: FAULT, FAULT_AFTER, DRAIN_SECONDS, THEN, AGE_DAYS (of the records)."
    e = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    e.update(ENV, **{k: str(v) for k, v in env.items()})
    return subprocess.Popen([sys.executable, '-c', WRITER, mode, str(store.root), prefix, str(n), str(threads)], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, timeout=120) -> tuple[int, list[str]]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.split(), err


def verified(settings_file) -> str:
    r = cli(settings_file, 'audit', 'verify', check=False)
    assert r.returncode == 0 and r.stdout.startswith('audit log verified'), r.stdout + r.stderr
    return r.stdout


def in_table(store) -> Counter:
    "How many records of each request id the predictions table holds, after a reader's drain."
    return Counter(store.sql("select request_id from predictions where route = 'champion'").request_id)


def journal_records(store) -> int:
    d = _journal_dir(store)
    return sum(t.num_rows for f in d.glob('*.wal') for t in _entries(f.read_bytes())[0]) if d.exists() else 0


@pytest.mark.timeout(240)
def test_writers_in_several_processes_make_one_chain(store, settings_file):
    "Three journal processes of four threads each and a batch process (append_records) write at once: one sequence, one chain."
    procs = [writer(store, 'journal', f'p{k}', 60, threads=4) for k in range(3)] + [writer(store, 'batch', 'b', 20)]
    acked = []
    for p in procs:
        code, ids, err = finish(p)
        assert code == 0, err
        acked += ids
    assert len(acked) == 200 and len(set(acked)) == 200
    assert not store.journal_waits()   # each writer's close drained the journal
    seqs = store.sql('select seq from predictions order by seq').seq.tolist()
    assert seqs == list(range(3 * 72 + 20))   # every fifth request has a shadow answer: 72 records a process
    assert in_table(store) == Counter(acked)
    assert verified(settings_file).startswith(f'audit log verified: {len(seqs)} records (seq 0..{len(seqs) - 1}), chain intact')


@pytest.mark.timeout(120)
def test_readers_see_records_still_in_the_journal(store, settings_file, caplog):
    "A service killed before its drain: the CLI's readers, the API and a read-only store all find their way."
    code, acked, err = finish(writer(store, 'journal', 'j', 12, DRAIN_SECONDS=600, THEN='exit'))
    assert code == 0 and len(acked) == 12, err
    assert journal_records(store) == 12 + 3 and store.dataset('predictions').count_rows() == 0
    out = verified(settings_file)
    assert out.startswith('audit log verified: 15 records (seq 0..14), chain intact') and '15 of them in the journal' in out
    # a read-only store (the dashboards) reads the table only, and says so
    ro = Store(store.root, read_only=True)
    assert ro.sql('select count(*) as n from predictions').n.iloc[0] == 0
    assert 'holds records not yet in the predictions table' in caplog.text
    # `wildproof audit tail` and `audit show` read through the store, which drains the journal first
    tail = cli(settings_file, 'audit', 'tail', '-n', '20').stdout
    assert tail.count('credit_risk') == 15
    shown = cli(settings_file, 'audit', 'show', 'j-5').stdout
    assert '"route": "champion"' in shown and '"route": "shadow"' in shown
    assert not store.journal_waits() and in_table(store) == Counter(acked)
    out = verified(settings_file)
    assert out.startswith('audit log verified: 15 records (seq 0..14), chain intact') and 'journal' not in out


STAGES = [
    ('journal-write', 'while appending: half an entry written, never fsynced, never acknowledged'),
    ('journal-fsynced', 'after the fsync, before the answer'),
    ('drain-before-commit', 'during the drain, before the Delta commit'),
    ('drain-committed', 'after the Delta commit, before the head file and before the journal file is deleted'),
    ('drain-head-written', 'after the head file, before the journal file is deleted'),
]


@pytest.mark.timeout(180)
@pytest.mark.parametrize('stage', [s for s, _ in STAGES], ids=[s for s, _ in STAGES])
def test_a_crash_at_every_stage_loses_and_duplicates_nothing(store, settings_file, stage):
    "Ten requests acknowledged, then the process dies at `stage`; the next process finds every acknowledged record once, and the chain intact."
    first = writer(store, 'journal', 'a', 10, threads=2, DRAIN_SECONDS=600)
    assert finish(first)[0] == 0   # ten requests (twelve records) in the table
    drains = stage.startswith('drain')
    p = writer(store, 'journal', 'b', 30, threads=1, DRAIN_SECONDS=600, FAULT=stage, FAULT_AFTER=30 if drains else 10,
               THEN='drain' if drains else 'close')
    code, acked, err = finish(p)
    assert code == 70, f'{stage}: exit {code}\n{err}'   # os._exit at the stage
    assert len(acked) == (30 if drains else 10)
    out = verified(settings_file)                       # the journal as the crash left it (no drain yet)
    if stage == 'journal-write': assert 'note: journal current.wal: an unfinished entry at its end' in out
    # a fresh writer goes on: it cuts off a torn entry, drains, and chains after what the crash left
    assert finish(writer(store, 'journal', 'c', 5))[0] == 0
    got = in_table(store)
    assert all(got[r] == 1 for r in acked), f'{stage}: lost or duplicated {[r for r in acked if got[r] != 1]}'
    assert max(got.values()) == 1
    n = store.sql('select count(*) as n from predictions').n.iloc[0]
    assert store.sql('select seq from predictions order by seq').seq.tolist() == list(range(n))
    out = verified(settings_file)
    assert out.startswith(f'audit log verified: {n} records (seq 0..{n - 1}), chain intact') and 'journal' not in out   # drained, no note left
    assert not store.journal_waits()


@pytest.mark.timeout(180)
def test_kill_9_under_load_loses_no_acknowledged_record(store, settings_file):
    "Eight threads write as fast as they can, with a drain every 20 ms; SIGKILL lands wherever it lands."
    p = writer(store, 'journal', 'k', 100_000, threads=8, DRAIN_SECONDS=0.02)
    acked, t0 = [], time.monotonic()
    while len(acked) < 300 and time.monotonic() - t0 < 60:
        line = p.stdout.readline()
        if not line: break
        acked.append(line.strip())
    p.send_signal(signal.SIGKILL)
    out, _ = p.communicate(timeout=30)
    acked += out.split()
    assert p.returncode == -signal.SIGKILL and len(acked) >= 300
    verified(settings_file)
    got = in_table(store)
    assert all(got[r] == 1 for r in acked) and max(got.values()) == 1
    n = store.sql('select count(*) as n from predictions').n.iloc[0]
    assert verified(settings_file).startswith(f'audit log verified: {n} records (seq 0..{n - 1}), chain intact')


def damaged(settings_file) -> list[str]:
    r = cli(settings_file, 'audit', 'verify', check=False)
    assert r.returncode == 1 and r.stdout.startswith('audit log BROKEN'), r.stdout + r.stderr
    return [line.strip() for line in r.stdout.splitlines()[1:]]


@pytest.mark.timeout(120)
def test_an_edited_journal_entry_is_found(store, settings_file):
    "A decline turned into an approval in the journal file, before any drain: the entry's checksum names it, and nothing drains it into the table."
    assert finish(writer(store, 'journal', 'e', 6, DRAIN_SECONDS=600, THEN='exit'))[0] == 0
    f = _journal_dir(store) / CURRENT
    b = f.read_bytes()
    entries, _, _ = _entries(b)
    at = b.index(b'decline', len(b) // 2)             # in one of the later entries
    f.write_bytes(b[:at] + b'approve' + b[at + 7:])
    problems = damaged(settings_file)
    assert problems[0].startswith('journal current.wal: the entry at byte') and 'checksum does not match' in problems[0], problems
    assert store.sql('select count(*) as n from predictions').n.iloc[0] == 0   # the reader warns and reads the table: nothing damaged goes in
    assert store.journal_waits()
    assert not verify(store).ok


@pytest.mark.timeout(120)
def test_a_journal_record_changed_with_a_matching_checksum_is_named(store, settings_file):
    "Whoever rewrites an entry whole, checksum and all, still breaks its link's hash."
    import pyarrow as pa
    from wildproof.audit import SCHEMA, _entry
    assert finish(writer(store, 'journal', 'e', 6, DRAIN_SECONDS=600, THEN='exit'))[0] == 0
    f = _journal_dir(store) / CURRENT
    entries, _, _ = _entries(f.read_bytes())
    t = entries[3]
    seq = t['seq'][0].as_py()
    t = t.set_column(SCHEMA.get_field_index('decision'), 'decision', pa.array(['approve'] * t.num_rows, pa.string()))
    f.write_bytes(b''.join(_entry(e) for e in entries[:3] + [t] + entries[4:]))
    assert damaged(settings_file) == [f'record {seq}: content does not match its hash (changed)']


@pytest.mark.timeout(120)
def test_a_deleted_journal_entry_is_named(store, settings_file):
    assert finish(writer(store, 'journal', 'e', 6, DRAIN_SECONDS=600, THEN='exit'))[0] == 0
    f = _journal_dir(store) / CURRENT
    entries, _, _ = _entries(f.read_bytes())
    from wildproof.audit import _entry
    gone = entries[2]['seq'][0].as_py()
    f.write_bytes(b''.join(_entry(e) for e in entries[:2] + entries[3:]))
    problems = damaged(settings_file)
    assert problems[0].startswith(f'records {gone}..{gone}: missing (deleted?)'), problems


@pytest.mark.timeout(120)
def test_retention_takes_the_journal_into_account(store, settings_file):
    "Old records still in the journal are part of the log: retention moves them into the table first, then removes them; the chain goes on."
    assert finish(writer(store, 'journal', 'old', 5, DRAIN_SECONDS=600, THEN='exit', AGE_DAYS=400))[0] == 0
    assert finish(writer(store, 'journal', 'new', 4, DRAIN_SECONDS=600, THEN='exit'))[0] == 0
    assert store.journal_waits() and store.dataset('predictions').count_rows() == 0
    out = cli(settings_file, 'audit', 'retention', '--days', '365').stdout
    assert out.startswith('removed 6 prediction records older than 365 days') and 'through record 5' in out   # old-0 has a shadow answer
    assert not store.journal_waits()
    assert verified(settings_file).startswith('audit log verified: 5 records (seq 6..10), chain intact')
    assert finish(writer(store, 'journal', 'later', 2))[0] == 0
    assert verified(settings_file).startswith('audit log verified: 8 records (seq 6..13), chain intact')   # later-0 has a shadow answer too
