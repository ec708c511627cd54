"""The chained governance record (decision 0017): every row of a governed table has its hash-chained record; tampering with
the Delta files, of a governed table or of the record itself, is named by `governance.verify` and fails `wildproof governance
verify`; signed approvals verify against the approver's SSH key only; two processes appending at once keep one chain."""
import json, os, subprocess, sys, time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from wildproof import governance
from wildproof.principals import add_person
from wildproof.store import TABLES, Store, utcnow

EXE = Path(sys.executable).parent / 'wildproof'


def cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')} | {'MLFLOW_DISABLE_TELEMETRY': 'true'}
    return subprocess.run([str(EXE), *map(str, args)], env=env, capture_output=True, text=True, timeout=300)


def keypair(d: Path, name: str) -> tuple[Path, str]:
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', str(d / name)], check=True)
    return d / name, (d / f'{name}.pub').read_text().strip()


def story(s: Store, signer: Path | None = None):
    "A model's governed story, one append each: described, gated, approved twice (the first signed when `signer` is given), promoted, rolled back."
    s.append('models', [dict(model='m', owner='team', intended_use='loans', risk_tier='high', actor='dev', created_at=utcnow())])   # seq 0
    s.append('verdicts', [dict(verdict_id='v1', model='m', version='2', kind='gate', passed=True, risk_tier='high', created_at=utcnow())])   # 1
    tech = dict(model='m', version='2', approver='vic', role='technical', note='', created_at=utcnow())
    if signer: tech['signature'] = governance.sign(governance.approval_bytes(tech), signer)
    s.append('approvals', [tech])   # 2
    s.append('approvals', [dict(model='m', version='2', approver='bo', role='business', note='fine', signature='', created_at=utcnow())])   # 3
    s.append('aliases', [dict(model='m', alias='production', version='2', action='promote', actor='op', created_at=utcnow())])   # 4
    s.append('aliases', [dict(model='m', alias='production', version='1', previous_version='2', action='rollback', actor='op',
                              reason='drift', created_at=utcnow())])   # 5


def found(r) -> set[tuple]:
    return {(p.kind, p.table, p.seq) for p in r.problems}


@pytest.fixture
def gov(tmp_path):
    s = Store(tmp_path / 'store')
    vic_key, vic_pub = keypair(tmp_path, 'vic')
    pf = tmp_path / 'principals.json'
    add_person(pf, 'vic', 'a long password', ['validator'], ssh_key=vic_pub)
    add_person(pf, 'bo', 'another password', ['business_owner'], store=s, actor='admin')   # seq 0: a principal change, on the record
    story(s, vic_key)   # seqs 1..6
    r = governance.verify(s, principals=pf)
    assert r.ok, r
    assert (r.records, r.rows, r.signed) == (7, 7, 1)
    return s, pf, tmp_path


def test_a_clean_store_verifies_and_the_cli_says_so(gov):
    s, pf, _ = gov
    r = cli('--store', s.root, 'governance', 'verify', '--principals', pf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'governance record: ok, 7 records' in r.stdout
    assert governance.verify(Store(s.root, read_only=True), principals=pf).ok   # the dashboards' read-only view checks it too, without a lock
    log = cli('--store', s.root, 'governance', 'log', '--model', 'm')
    assert log.returncode == 0, log.stderr
    assert 'approved as technical (signed)' in log.stdout and 'rollback: production → version 1 (was 2): drift' in log.stdout
    assert 'bo' not in governance.log(s, model='m').model.tolist()
    assert governance.log(s).what.iloc[0] == 'person bo: added business_owner'


def test_an_approver_rewritten_is_named_and_fails_the_cli(gov):
    s, pf, _ = gov
    DeltaTable(s.table_path('approvals')).update({'approver': "'eve'"}, predicate="approver = 'bo'")
    r = governance.verify(s, principals=pf)
    assert found(r) == {('changed', 'approvals', 4)}
    assert "approver 'bo' → 'eve'" in r.problems[0].what
    assert any('UPDATE' in n and 'approvals' in n for n in r.notes)   # the Delta log shows the rewrite too
    c = cli('--store', s.root, 'governance', 'verify', '--principals', pf)
    assert c.returncode == 1 and "changed: record 4 (approvals) its row was changed in the table: approver 'bo' → 'eve'" in c.stdout


def test_an_alias_row_deleted_is_named(gov):
    s, pf, _ = gov
    DeltaTable(s.table_path('aliases')).delete("action = 'rollback'")
    r = governance.verify(s, principals=pf)
    assert found(r) == {('deleted', 'aliases', 6)}
    assert 'its row is missing from the table' in r.problems[0].what
    assert cli('--store', s.root, 'governance', 'verify', '--principals', pf).returncode == 1
    a = cli('--store', s.root, 'audit', 'verify')   # the audit log is fine, the governance record is not: audit verify says so too
    assert a.returncode == 1 and 'governance record: BROKEN' in a.stdout and 'deleted: record 6 (aliases)' in a.stdout, a.stdout + a.stderr


def test_a_row_inserted_outside_wildproof_is_named(gov):
    s, pf, _ = gov
    forged = dict(model='m', version='2', approver='mallory', role='audit', note='', signature='', created_at=utcnow())
    write_deltalake(s.table_path('approvals'), pa.Table.from_pylist([forged], schema=TABLES['approvals']), mode='append')
    r = governance.verify(s, principals=pf)
    assert found(r) == {('inserted', 'approvals', None)}
    assert 'mallory' in r.problems[0].what and 'a row without a record' in r.problems[0].what


def test_a_table_overwritten_with_a_new_parquet_version_is_named(gov):
    "A new table version that rewrites every file (mode overwrite): the verdict flipped to failed, a row gone."
    s, pf, _ = gov
    t = DeltaTable(s.table_path('verdicts')).to_pyarrow_table().to_pylist()
    t[0]['passed'] = False
    write_deltalake(s.table_path('verdicts'), pa.Table.from_pylist(t, schema=TABLES['verdicts']), mode='overwrite')
    r = governance.verify(s, principals=pf)
    assert found(r) == {('changed', 'verdicts', 2)} and 'passed True → False' in r.problems[0].what
    assert any('verdicts' in n and 'Overwrite' in n for n in r.notes)


def test_a_record_rehashed_breaks_its_hash_and_the_next_link(gov):
    s, pf, _ = gov
    DeltaTable(s.table_path('governance')).update({'hash': "'" + 'f' * 64 + "'"}, predicate='seq = 3')
    r = governance.verify(s, principals=pf)
    assert found(r) == {('changed', 'approvals', 3), ('unlinked', 'approvals', 4)}


def test_a_record_changed_and_rehashed_still_breaks_the_chain(gov):
    "Rewriting a record's row and its hash consistently: the next record no longer links, and the table's row no longer matches."
    from wildproof.store import record_hash
    s, pf, _ = gov
    g = DeltaTable(s.table_path('governance'))
    r3 = [r for r in g.to_pyarrow_table().to_pylist() if r['seq'] == 3][0]
    rj = r3['row_json'].replace('"vic"', '"eve"')
    h = record_hash(r3['prev_hash'], 3, r3['table'], rj, r3['writer'], r3['created_at'])
    g.update({'row_json': "'" + rj.replace("'", "''") + "'", 'hash': f"'{h}'"}, predicate='seq = 3')
    r = governance.verify(s, principals=pf)
    assert ('unlinked', 'approvals', 4) in found(r) and ('changed', 'approvals', 3) in found(r)


def test_records_deleted_in_the_middle_and_at_the_end_are_named(gov):
    s, pf, _ = gov
    DeltaTable(s.table_path('governance')).delete('seq = 2')
    r = governance.verify(s, principals=pf)
    assert ('deleted', None, None) in found(r)                # records 2..2 missing (their table is gone with them)
    assert ('inserted', 'verdicts', None) in found(r)         # its verdict row has no record now
    assert ('unlinked', 'approvals', 3) in found(r)
    assert any('records 2..2 are missing' in p.what for p in r.problems)
    # the last record and its row both removed: the head file still names it
    s2 = Store(s.root)
    DeltaTable(s.table_path('governance')).delete('seq = 6')
    DeltaTable(s.table_path('aliases')).delete("action = 'rollback'")
    r = governance.verify(s2, principals=pf)
    assert any('records 6..6 are missing at the end (the head file names record 6)' in p.what for p in r.problems)


def test_signatures_verify_against_the_approvers_key_only(gov):
    s, pf, tmp = gov
    _, eve_pub = keypair(tmp, 'eve')
    add_person(pf, 'vic', None, ['validator'], ssh_key=eve_pub)   # vic's key replaced by another: the signature no longer verifies
    r = governance.verify(s, principals=pf)
    assert found(r) == {('signature', 'approvals', 3)}
    assert "its signature does not verify with vic's ssh_key" in r.problems[0].what
    other = tmp / 'other.json'
    add_person(other, 'vic', 'a long password', ['validator'])   # no key at all
    r = governance.verify(s, principals=other)
    assert found(r) == {('signature', 'approvals', 3)} and 'has no ssh_key' in r.problems[0].what
    c = cli('--store', s.root, 'governance', 'verify', '--principals', other)
    assert c.returncode == 1 and 'signature: record 3 (approvals)' in c.stdout


def test_a_signature_copied_onto_another_approval_fails(gov):
    "The signature is of the approval's bytes: the same signature on a row for another version fails, though the row has its record."
    s, pf, _ = gov
    sig = [a for a in s.dataset('approvals').to_table().to_pylist() if a['approver'] == 'vic'][0]['signature']
    s.append('approvals', [dict(model='m', version='3', approver='vic', role='technical', note='', signature=sig, created_at=utcnow())])
    r = governance.verify(s, principals=pf)
    assert found(r) == {('signature', 'approvals', 7)}


WRITER = '''
import sys, time
from wildproof.store import Store, utcnow
s, who, n, start = Store(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
while time.time() < start: time.sleep(0.001)
for i in range(n):
    t = ('approvals', 'aliases')[i % 2]
    row = dict(model=who, version=str(i), approver=who, role='technical', note='', created_at=utcnow()) if t == 'approvals' else \\
          dict(model=who, alias='staging', version=str(i), action='promote', actor=who, created_at=utcnow())
    s.append(t, [row])
'''


def test_two_processes_appending_at_once_keep_one_chain(tmp_path):
    root, n = tmp_path / 'store', 30
    Store(root)
    start = time.time() + 3
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    ps = [subprocess.Popen([sys.executable, '-c', WRITER, str(root), who, str(n), str(start)], env=env, stderr=subprocess.PIPE, text=True)
          for who in ('a', 'b')]
    for p in ps: assert p.wait(timeout=300) == 0, p.stderr.read()
    s = Store(root)
    r = governance.verify(s, principals=tmp_path / 'none.json')
    assert r.ok, r
    assert r.records == r.rows == 2 * n
    recs = s.sql('select seq, writer from governance order by seq')
    assert recs.seq.tolist() == list(range(2 * n))
    assert recs.writer.str.extract(r'pid (\d+)')[0].nunique() == 2
    # and interleaved, not one after the other (both really wrote at once)
    owners = [json.loads(j)['model'] for j in s.sql('select row_json from governance order by seq').row_json]
    assert sum(a != b for a, b in zip(owners, owners[1:])) > 1, owners


def test_an_older_store_chains_the_governed_rows_it_holds(tmp_path):
    "A store of schema 7 (no governance table, approvals without signature) is migrated: its governed rows start the chain, which verifies and goes on."
    old = tmp_path / 'old'
    (old / 'tables').mkdir(parents=True)
    (old / 'store.json').write_text(json.dumps({'schema_version': 7}))
    ap7 = pa.schema([f for f in TABLES['approvals'] if f.name != 'signature'])
    DeltaTable.create(old / 'tables' / 'approvals', ap7)
    write_deltalake(old / 'tables' / 'approvals', pa.Table.from_pylist(
        [dict(model='m', version='1', approver=n, role=r, note='', created_at=utcnow()) for n, r in [('vic', 'technical'), ('bo', 'business')]], schema=ap7),
        mode='append')
    DeltaTable.create(old / 'tables' / 'aliases', TABLES['aliases'])
    write_deltalake(old / 'tables' / 'aliases', pa.Table.from_pylist(
        [dict(model='m', alias='production', version='1', action='promote', actor='op', created_at=utcnow())], schema=TABLES['aliases']), mode='append')
    s = Store(old)
    assert 'governance: 3 rows chained' in s.migrated
    r = governance.verify(s, principals=tmp_path / 'none.json')
    assert r.ok and r.records == r.rows == 3, r
    s.append('approvals', [dict(model='m', version='2', approver='vic', role='technical', note='', signature='', created_at=utcnow())])
    assert governance.verify(Store(old), principals=tmp_path / 'none.json').ok
    assert Store(old).migrated == []   # adopted once
