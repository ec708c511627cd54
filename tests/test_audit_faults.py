"""The prediction audit log under attack and under retention, judged from the shell (`wildproof audit verify`).

The records are written with the audit log's own API (`append_records`, as the scoring core does), some with an
old `created_at`; the tampering goes straight at the Delta table, as someone with access to the files would.
"""
import json
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from tests.test_cli import run
from wildproof.audit import AuditError, _pieces, append_records, link_hash
from wildproof.datasets import ingest, snapshot_path
from wildproof.store import utcnow

ENV = {'MLFLOW_DISABLE_TELEMETRY': 'true', 'OMP_NUM_THREADS': '1'}


def cli(settings, *args, check=True):
    return run(*args, cwd=settings.parent, env={**ENV, 'WILDPROOF_SETTINGS': str(settings)}, check=check)


def records(prefix: str, n: int, *, age_days: float = 0) -> list[dict]:
    "`n` prediction records as the scoring core writes them, created `age_days` ago."
    at = utcnow() - timedelta(days=age_days)
    return [dict(request_id=f'{prefix}-{i}', created_at=at, source='rest', model='credit_risk', version='1', route='champion',
                 entity_key=str(1000 + i), score=0.01 * i, decision='approve' if i % 3 else 'decline', review=False, reasons=None,
                 inputs_json=json.dumps({'application_id': 1000 + i, 'income': 50000 + i}), latency_ms=1.5) for i in range(n)]


@pytest.fixture
def logged(store, settings_file):
    "Twenty single-record requests in two group commits (one link per request, as the service writes them); the chain verifies."
    append_records(store, records('a', 10), groups=[1] * 10)
    append_records(store, records('b', 10), groups=[1] * 10)
    r = cli(settings_file, 'audit', 'verify')
    assert r.stdout.startswith('audit log verified: 20 records (seq 0..19), chain intact')
    return store


def predictions(store) -> DeltaTable:
    return DeltaTable(store.table_path('predictions'))


def broken(settings_file) -> list[str]:
    "`wildproof audit verify` must exit 1; the problems it lists."
    r = cli(settings_file, 'audit', 'verify', check=False)
    assert r.returncode == 1 and r.stdout.startswith('audit log BROKEN'), r.stdout + r.stderr
    return [line.strip() for line in r.stdout.splitlines()[1:]]


@pytest.mark.timeout(60)
def test_a_changed_record_is_named(logged, settings_file):
    predictions(logged).update(new_values={'decision': 'approve'}, predicate='seq = 6')   # record 6 was a decline
    assert broken(settings_file) == ['record 6: content does not match its hash (changed)']


@pytest.mark.timeout(60)
def test_a_deleted_record_is_named(logged, settings_file):
    predictions(logged).delete('seq = 12')
    assert broken(settings_file) == ['records 12..12: missing (deleted?)',
                                     'record 13: does not link to the record before it (a record inserted, deleted or re-hashed before it)']


@pytest.mark.timeout(60)
def test_a_deleted_last_record_is_named_and_stops_the_writers(logged, settings_file):
    predictions(logged).delete('seq = 19')
    assert broken(settings_file) == ['records 19..19: missing at the end of the log (the head names record 19)']
    with pytest.raises(AuditError, match='no longer holds record 19'):   # the service answers 503 rather than chain onto it
        append_records(logged, records('c', 1))


@pytest.mark.timeout(60)
def test_a_rewritten_chain_is_caught_by_the_head(logged, settings_file):
    "Change record 15 and re-hash it and every record after it: each link holds, only the head file knows."
    dt = predictions(logged)
    t = dt.to_pyarrow_table().sort_by('seq')
    prev, tail = t['hash'][14].as_py(), t.slice(15)
    tail = tail.set_column(tail.schema.get_field_index('score'), 'score', pa.array([0.99] + tail['score'].to_pylist()[1:], pa.float64()))
    pieces, hashes = _pieces(tail), []
    for i in range(tail.num_rows): hashes.append(link_hash(hashes[-1] if hashes else prev, pieces, i, i + 1))
    tail = tail.set_column(tail.schema.get_field_index('prev_hash'), 'prev_hash', pa.array([prev] + hashes[:-1], pa.string()))
    tail = tail.set_column(tail.schema.get_field_index('hash'), 'hash', pa.array(hashes, pa.string()))
    dt.delete('seq >= 15')
    write_deltalake(dt, tail, mode='append')
    assert broken(settings_file) == ['record 19: differs from the head file (the chain was rewritten)']


@pytest.mark.timeout(60)
def test_an_inserted_record_is_named(logged, settings_file):
    dt = predictions(logged)
    t = dt.to_pyarrow_table().sort_by('seq')
    fake = t.slice(9, 1).set_column(t.schema.get_field_index('request_id'), 'request_id', pa.array(['forged'], pa.string()))
    write_deltalake(dt, fake, mode='append')   # a copy of record 9 with another request id (and its old hash)
    problems = broken(settings_file)
    assert 'record 9: sequence number repeated (an inserted record?)' in problems
    assert any(p.startswith('2 records numbered 9: content does not match their hash') for p in problems)   # the forgery shares record 9's link


def batch_link(store, n=50):
    "`n` records of one batch chunk, as score_snapshot writes them: one link, inputs by reference to a snapshot's rows."
    snap = ingest(store, 'applications', pa.table({'application_id': list(range(n)), 'income': [50_000.0 + i for i in range(n)]}))
    recs = [dict(r, source='batch', inputs_json=None, input_snapshot=snap.snapshot_id, input_row=i, feature_values=[0.5, 0.01 * i])
            for i, r in enumerate(records('batch', n))]
    append_records(store, recs)
    return snap


@pytest.mark.timeout(60)
def test_a_changed_record_in_a_batch_names_its_link(logged, settings_file):
    batch_link(logged)   # records 20..69
    assert cli(settings_file, 'audit', 'verify').stdout.startswith('audit log verified: 70 records (seq 0..69), chain intact')
    predictions(logged).update(new_values={'score': '0.5'}, predicate='seq = 33')
    assert broken(settings_file) == ['records 20..69: content does not match their hash (one changed, or one was added to or removed from their link)']


@pytest.mark.timeout(60)
def test_a_record_removed_from_a_batch_link_is_found(logged, settings_file):
    batch_link(logged)
    predictions(logged).delete('seq = 40')
    assert broken(settings_file) == ['records 40..40: missing (deleted?)',
                                     'records 20..69: content does not match their hash (one changed, or one was added to or removed from their link)']


@pytest.mark.timeout(60)
def test_a_changed_snapshot_row_is_found(logged, settings_file):
    "A batch record's inputs are its snapshot's row: editing that row is tampering with the record."
    snap = batch_link(logged)
    DeltaTable(snapshot_path(logged, snap.dataset, snap.content_hash)).update(new_values={'income': '1.0'}, predicate='"__row" = 7')
    assert broken(settings_file) == [f'snapshot {snap.snapshot_id}: its rows changed since it was ingested (records 20..69 take their inputs from it)']


@pytest.mark.timeout(90)
def test_retention_removes_only_old_records_and_keeps_the_chain(store, settings_file):
    append_records(store, records('old', 10, age_days=400))
    append_records(store, records('month', 10, age_days=30))
    append_records(store, records('new', 5))
    anchor = store.sql('select hash from predictions where seq = 9').hash.iloc[0]
    out = cli(settings_file, 'audit', 'retention', '--days', '365').stdout
    assert out.startswith('removed 10 prediction records older than 365 days') and 'through record 9' in out
    left = store.sql('select seq, request_id from predictions order by seq')
    assert list(left.seq) == list(range(10, 25)) and not left.request_id.str.startswith('old-').any()
    assert cli(settings_file, 'audit', 'verify').stdout.startswith('audit log verified: 15 records (seq 10..24), chain intact')
    # the removal is an event, with where the chain now starts
    ev = store.sql("select subject, detail_json from events where kind = 'audit_retention'")
    assert list(ev.subject) == ['predictions']
    d = json.loads(ev.detail_json.iloc[0])
    assert (d['removed_through_seq'], d['anchor_hash'], d['rows'], d['days']) == (9, anchor, 10, 365)
    # removed means gone from the disk, not only from the latest table version
    files = [f for f in store.table_path('predictions').rglob('*.parquet')]
    assert files and not any(str(r).startswith('old-') for f in files for r in pq.read_table(f, columns=['request_id'])['request_id'].to_pylist())
    # nothing more to remove; the chain goes on from its new start
    assert cli(settings_file, 'audit', 'retention', '--days', '365').stdout.startswith('removed 0 prediction records')
    append_records(store, records('later', 3))
    assert cli(settings_file, 'audit', 'verify').stdout.startswith('audit log verified: 18 records (seq 10..27), chain intact')
    tail = cli(settings_file, 'audit', 'tail', '-n', '3').stdout
    assert tail.count('credit_risk') == 3
    # a shorter period removes the month-old records too; the latest anchor counts
    out = cli(settings_file, 'audit', 'retention', '--days', '7').stdout
    assert out.startswith('removed 10 prediction records older than 7 days') and 'through record 19' in out
    assert cli(settings_file, 'audit', 'verify').stdout.startswith('audit log verified: 8 records (seq 20..27), chain intact')


@pytest.mark.timeout(60)
def test_retention_of_everything_then_the_chain_goes_on(store, settings_file):
    append_records(store, records('old', 5, age_days=3000))
    last = store.sql('select hash from predictions where seq = 4').hash.iloc[0]
    assert 'removed 5 prediction records older than 2557 days' in cli(settings_file, 'audit', 'retention').stdout   # [audit] retention_days
    assert cli(settings_file, 'audit', 'verify').stdout.startswith('audit log verified: no records yet')
    t = append_records(store, records('new', 3))
    assert t['seq'].to_pylist() == [5, 6, 7] and t['prev_hash'][0].as_py() == last
    assert cli(settings_file, 'audit', 'verify').stdout.startswith('audit log verified: 3 records (seq 5..7), chain intact')


@pytest.mark.timeout(60)
def test_retention_days_0_is_not_silently_the_default(store, settings_file):
    append_records(store, records('old', 3, age_days=10))
    r = cli(settings_file, 'audit', 'retention', '--days', '0', check=False)
    assert r.returncode == 1 or 'older than 0 days' in r.stdout, r.stdout


@pytest.mark.timeout(60)
def test_retention_removes_whole_links_only(store, settings_file):
    "A link (one request, or one batch chunk) goes as a whole or not at all: half of it could no longer be verified."
    append_records(store, records('old', 4, age_days=400), groups=[2, 2])
    append_records(store, records('straddling', 3, age_days=400) + records('straddling-new', 3))   # one link, half of it old
    out = cli(settings_file, 'audit', 'retention', '--days', '365').stdout
    assert out.startswith('removed 4 prediction records older than 365 days') and 'through record 3' in out
    assert cli(settings_file, 'audit', 'verify').stdout.startswith('audit log verified: 6 records (seq 4..9), chain intact')
