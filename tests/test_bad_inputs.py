"""Every bad input of the data gate gets a quarantine record or a clear error, never a silent drop."""
import gzip, json, os, time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wildproof.contracts import BatchRejected, Contract, infer_contract, validate
from wildproof.datasets import DataError, get_snapshot, ingest, list_snapshots, read_snapshot
from wildproof.settings import WildproofError

N_REF = 3000
JOBS = ['retired', 'salaried', 'self_employed', 'student']


def make_reference(n=N_REF, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        'id': np.arange(n, dtype='int64'),
        'applied_at': pd.date_range('2024-01-01', periods=n, freq='h'),
        'income': rng.lognormal(10, 0.5, n).round(2),
        'age': rng.integers(18, 80, n),
        'job': rng.choice(JOBS, n),
        'comment': [f'applicant {i} says ' + 'hello ' * (i % 5) for i in range(n)],
        'score': np.where(rng.random(n) < 0.03, np.nan, rng.random(n)),
    })


REF = make_reference()


def make_batch(n=200, seed=1) -> pd.DataFrame:
    "A clean batch: rows drawn from the reference (so inside every inferred bound) with new keys and later times."
    b = REF.sample(n, random_state=seed).reset_index(drop=True)
    b['id'] = np.arange(100_000, 100_000 + n, dtype='int64')
    b['applied_at'] = pd.date_range('2024-06-01', periods=n, freq='h')
    b['score'] = b.score.fillna(0.5)
    return b


@pytest.fixture
def contract(store) -> Contract:
    snap = ingest(store, 'applications', REF)
    c = infer_contract(store, snap, key='id', time_column='applied_at').register(store)
    assert c.columns['job'].categories == JOBS
    assert c.columns['score'].nullable and c.columns['score'].max_null_share is not None
    assert not c.columns['income'].nullable and c.columns['income'].max is not None
    assert c.columns['comment'].categories is None and c.columns['comment'].max_length is not None
    return c


def check(store, v):
    "The invariants every validation must meet, in the result and in the store's tables; returns the quarantine records."
    snap = get_snapshot(store, v.snapshot_id)
    assert v.status in ('accepted', 'rejected')
    assert v.rows_in == snap.rows
    assert v.rows_in == v.rows_accepted + v.rows_quarantined + v.rows_rejected
    acc = v.accepted()
    assert len(acc) == v.rows_accepted
    q = v.quarantined()
    assert q['row'].nunique() == v.rows_quarantined
    assert q.rule.notna().all() and q.reason.notna().all() and (q.reason.str.len() > 0).all()
    if v.status == 'rejected': assert v.rows_accepted == 0 and v.problems
    else:
        # no silent drop: every row of the batch is either accepted or quarantined, exactly once
        allrows = read_snapshot(store, snap, as_arrow=True).to_pandas()
        if 'id' in allrows.columns and allrows.id.notna().all() and allrows.id.is_unique:
            assert set(acc.id) | set(allrows.id.iloc[q['row'].unique()]) == set(allrows.id)
            assert set(acc.id).isdisjoint(set(allrows.id.iloc[q['row'].unique()]))
    # the store holds the same record
    rec = store.sql('select * from validations where validation_id = $v', {'v': v.validation_id}, tables=['validations'])
    assert len(rec) == 1
    r = rec.iloc[0]
    assert (r.status, r.rows_in, r.rows_accepted, r.rows_quarantined) == (v.status, v.rows_in, v.rows_accepted, v.rows_quarantined)
    assert json.loads(r.problems_json) == v.problems
    assert sum(x['failed'] for x in json.loads(r.rules_json)) == len(q)
    nq = store.sql('select count(*) as n, count(distinct "row") as r from quarantine where validation_id = $v', {'v': v.validation_id}, tables=['quarantine'])
    assert (int(nq.n.iloc[0]), int(nq.r.iloc[0])) == (len(q), v.rows_quarantined)
    return q


def run(store, contract, source, **kw):
    snap = ingest(store, 'applications', source, encoding=kw.pop('encoding', 'utf-8'))
    v = validate(store, snap, contract, **kw)
    return v, check(store, v)


def rules_by_row(q) -> dict:
    return {int(r): sorted(g.rule) for r, g in q.groupby('row')}


def to_csv(df, path):
    df.to_csv(path, index=False)
    return path


def test_clean_batch_is_accepted(store, contract):
    v, q = run(store, contract, make_batch())
    assert (v.status, v.rows_accepted, v.rows_quarantined, v.problems) == ('accepted', 200, 0, [])
    assert len(q) == 0


# --- files that are not data ----------------------------------------------------------------------------------------------

def assert_not_ingested(store, match, source, **kw):
    with pytest.raises(WildproofError, match=match) as e:
        ingest(store, 'applications', source, **kw)
    assert isinstance(e.value, DataError)
    assert len(list_snapshots(store, 'applications')) == 1  # only the reference: nothing half-stored
    return e.value


def test_empty_file(store, contract, tmp_path):
    f = tmp_path / 'batch.csv'; f.write_bytes(b'')
    assert_not_ingested(store, r'batch\.csv is empty \(0 bytes\)', f)


def test_header_only_csv(store, contract, tmp_path):
    f = tmp_path / 'batch.csv'; f.write_text(','.join(REF.columns) + '\n')
    assert_not_ingested(store, 'has columns but no rows: nothing to ingest', f)


@pytest.mark.parametrize('content', [
    pytest.param(b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10', id='png'),
    pytest.param(gzip.compress(b'id,applied_at\n1,2024-01-01\n'), id='gzip'),
])
def test_binary_file_named_csv(store, contract, tmp_path, content):
    f = tmp_path / 'batch.csv'; f.write_bytes(content)
    assert_not_ingested(store, 'is neither CSV nor Parquet: it holds binary data', f)


def test_truncated_parquet(store, contract, tmp_path):
    good = tmp_path / 'good.parquet'; pq.write_table(pa.Table.from_pandas(make_batch(), preserve_index=False), good)
    raw = good.read_bytes()
    for name, data in [('half.parquet', raw[:len(raw) // 2]), ('tail.parquet', raw[:-10]), ('magic.parquet', raw[:4])]:
        f = tmp_path / name; f.write_bytes(data)
        assert_not_ingested(store, f'{name} looks like Parquet but cannot be read', f)
    # the intact file passes
    v, _ = run(store, contract, good)
    assert v.status == 'accepted'


def test_parquet_with_corrupt_column_name(store, contract, tmp_path):
    "A flipped byte in the footer makes a column name invalid UTF-8: that must be a DataError, not a raw UnicodeDecodeError."
    good = tmp_path / 'good.parquet'; pq.write_table(pa.Table.from_pandas(make_batch(), preserve_index=False), good)
    raw = good.read_bytes()
    footer = len(raw) - 8 - int.from_bytes(raw[-8:-4], 'little')
    at = raw.index(b'\x18\x02id', footer)  # the footer's schema element naming the column 'id'
    bad = raw[:at + 3] + b'\x9b' + raw[at + 4:]
    f = tmp_path / 'bad.parquet'; f.write_bytes(bad)
    assert_not_ingested(store, 'bad.parquet', f)


def test_latin1_text(store, contract, tmp_path):
    b = make_batch(20)
    b.loc[3, 'comment'] = 'très content, café crème'
    f = tmp_path / 'batch.csv'; f.write_bytes(b.to_csv(index=False).encode('latin-1'))
    e = assert_not_ingested(store, 'is not valid utf-8 text', f)
    msg = str(e)
    assert 'byte 0xe8' in msg and 'line 5' in msg and 'encoding=' in msg and 'latin-1' in msg
    v, _ = run(store, contract, f, encoding='latin-1')
    assert (v.status, v.rows_accepted) == ('accepted', 20)
    assert read_snapshot(store, v.snapshot_id).comment[3] == 'très content, café crème'


# --- schema problems -----------------------------------------------------------------------------------------------------

def test_missing_column(store, contract):
    batch = make_batch().drop(columns=['income'])
    with pytest.raises(BatchRejected, match=r'rejected: missing column income$') as e:
        run(store, contract, batch, raise_on_reject=True)
    assert e.value.result.status == 'rejected'
    check(store, e.value.result)
    v, q = run(store, contract, batch)
    assert (v.status, v.rows_accepted, v.rows_rejected, len(q)) == ('rejected', 0, 200, 0)
    assert v.problems == ['missing column income']


def test_extra_column(store, contract):
    v, q = run(store, contract, make_batch().assign(referrer='web'))
    assert (v.status, v.rows_accepted, len(q)) == ('accepted', 200, 0)
    assert v.problems == ['warning: unknown column referrer ignored (the raw snapshot keeps them)']
    assert 'referrer' in read_snapshot(store, v.snapshot_id).columns


def test_renamed_column(store, contract):
    batch = make_batch().rename(columns={'income': 'income_eur'})
    with pytest.raises(BatchRejected, match=r'missing column income \(renamed\? unknown columns present: income_eur\)'):
        run(store, contract, batch, raise_on_reject=True)
    v, _ = run(store, contract, batch)
    assert v.status == 'rejected' and v.rows_rejected == 200


def test_text_value_in_numeric_csv_column(store, contract, tmp_path):
    b = make_batch(50)
    b['age'] = b.age.astype(str); b.loc[3, 'age'] = 'forty'
    v, q = run(store, contract, to_csv(b, tmp_path / 'batch.csv'))
    assert (v.status, v.rows_quarantined, v.rows_accepted) == ('accepted', 1, 49)
    assert q[['row', 'rule', 'column', 'value']].values.tolist() == [[3, 'type', 'age', 'forty']]
    assert q.reason[0].startswith('age = forty: expected a')
    assert q.row_key[0] == str(b.id[3])


def test_whole_column_of_another_type(store, contract, tmp_path):
    b = make_batch()
    b['age'] = [f'age {i}' for i in range(len(b))]
    with pytest.raises(BatchRejected, match='column age is text and 100% of its values are not integer values: the contract expects integer'):
        run(store, contract, to_csv(b, tmp_path / 'batch.csv'), raise_on_reject=True)
    v, _ = run(store, contract, make_batch().assign(age=pd.Timestamp('2024-01-01')))
    assert v.status == 'rejected' and v.problems == ['column age is timestamp, the contract expects integer']
    v, _ = run(store, contract, make_batch().assign(income=True))
    assert v.status == 'rejected' and v.problems == ['column income is boolean, the contract expects float']


def test_fractional_value_in_integer_column(store, contract):
    b = make_batch().astype({'age': float}); b.loc[7, 'age'] = 40.5
    v, q = run(store, contract, b)
    assert (v.status, v.rows_quarantined) == ('accepted', 1)
    assert q[['row', 'rule', 'column', 'value']].values.tolist() == [[7, 'type', 'age', '40.5']]


# --- values ----------------------------------------------------------------------------------------------------------------

def test_nan_and_infinity_in_csv(store, contract, tmp_path):
    b = make_batch(50)
    b['income'] = b.income.astype(str); b['score'] = b.score.astype(str)
    b.loc[0, 'income'] = 'nan'; b.loc[1, 'income'] = 'inf'; b.loc[2, 'income'] = '-inf'
    b.loc[3, 'score'] = 'NaN'; b.loc[4, 'score'] = 'inf'
    f = to_csv(b, tmp_path / 'batch.csv')
    v, q = run(store, contract, f)
    # a 'nan' literal is read as a missing value (null): the non-nullable income column quarantines it as not_null,
    # the nullable score column counts it as a null; infinities are numbers that are not finite
    assert rules_by_row(q) == {0: ['not_null'], 1: ['finite'], 2: ['finite'], 4: ['finite']}
    assert q.set_index('row').value.to_dict() == {0: None, 1: 'inf', 2: '-inf', 4: 'inf'}
    assert q.set_index('row').reason[0] == 'income = null: expected a value (not null)'
    assert (v.status, v.rows_quarantined, v.rows_accepted) == ('accepted', 4, 46)
    assert pd.isna(read_snapshot(store, v.snapshot_id).score[3])


def test_nan_and_infinity_in_dataframe(store, contract):
    b = make_batch(50)
    b.loc[0, 'income'] = np.inf; b.loc[1, 'income'] = np.nan; b.loc[2, 'score'] = -np.inf
    v, q = run(store, contract, b)
    # pandas NaN is a null: not_null; infinity: finite
    assert rules_by_row(q) == {0: ['finite'], 1: ['not_null'], 2: ['finite']}
    assert (v.status, v.rows_quarantined) == ('accepted', 3)


def test_nan_in_arrow_table_is_not_finite(store, contract):
    "In Arrow a NaN is a value, not a null: it breaks the finite rule."
    b = make_batch(50)
    t = pa.Table.from_pandas(b, preserve_index=False)
    income = b.income.to_numpy().copy(); income[5] = np.nan
    t = t.set_column(t.schema.get_field_index('income'), 'income', pa.array(income, from_pandas=False))
    assert t['income'].null_count == 0
    v, q = run(store, contract, t)
    assert rules_by_row(q) == {5: ['finite']}
    assert q.value[0] in ('nan', 'NaN')


def test_values_100_times_too_large(store, contract):
    b = make_batch()
    b.loc[[0, 10], 'income'] *= 100; b.loc[20, 'age'] *= 100
    v, q = run(store, contract, b)
    assert rules_by_row(q) == {0: ['range'], 10: ['range'], 20: ['range']}
    assert set(q.column) == {'income', 'age'}
    assert all(f'expected at most {contract.columns[c].max}' in r for c, r in zip(q.column, q.reason))
    assert (v.status, v.rows_quarantined) == ('accepted', 3)
    # all rows out of range: the batch is rejected, every row quarantined
    v, q = run(store, contract, make_batch().assign(income=lambda x: x.income * 100))
    assert (v.status, v.rows_quarantined, v.rows_accepted) == ('rejected', 200, 0)
    assert 'more than the 20% allowed' in v.problems[-1]


def test_unseen_and_renamed_category(store, contract):
    b = make_batch(); b.loc[0, 'job'] = 'self-employed'; b.loc[1, 'job'] = 'astronaut'
    v, q = run(store, contract, b)
    assert q[['row', 'rule', 'column', 'value']].values.tolist() == [[0, 'category', 'job', 'self-employed'], [1, 'category', 'job', 'astronaut']]
    assert q.reason[0] == 'job = self-employed: expected one of 4 known categories'


def test_duplicate_keys(store, contract):
    b = make_batch(); b.loc[50, 'id'] = b.loc[10, 'id']; b.loc[60, 'id'] = b.loc[10, 'id']
    v, q = run(store, contract, b)
    assert q[['row', 'rule', 'row_key']].values.tolist() == [[50, 'unique_key', str(b.id[10])], [60, 'unique_key', str(b.id[10])]]
    assert (v.status, v.rows_quarantined) == ('accepted', 2)
    assert (v.accepted().id == b.id[10]).sum() == 1  # the first occurrence is kept


def test_all_null_column_dataframe(store, contract):
    # nullable column: too many nulls -> null_share, every null row quarantined, the batch rejected
    b = make_batch(); b['score'] = None
    v, q = run(store, contract, b)
    assert (v.status, v.rows_quarantined) == ('rejected', 200)
    assert set(q.rule) == {'null_share'} and set(q.column) == {'score'}
    assert any('column score: 200 nulls (100.0%)' in p for p in v.problems)
    # a column that may not be null
    b = make_batch(); b['job'] = None
    v, q = run(store, contract, b)
    assert (v.status, v.rows_quarantined) == ('rejected', 200)
    assert set(q.rule) == {'not_null'} and q.reason[0] == 'job = null: expected a value (not null)'


def test_all_null_column_csv(store, contract, tmp_path):
    b = make_batch(); b['score'] = None; b['income'] = None
    v, q = run(store, contract, to_csv(b, tmp_path / 'batch.csv'))
    assert (v.status, v.rows_quarantined) == ('rejected', 200)
    assert sorted(set(zip(q.column, q.rule))) == [('income', 'not_null'), ('score', 'null_share')]
    assert len(q) == 400


def test_very_long_string(store, contract):
    b = make_batch(); b.loc[4, 'comment'] = 'z' * 100_000
    v, q = run(store, contract, b)
    assert q[['row', 'rule', 'column']].values.tolist() == [[4, 'max_length', 'comment']]
    assert q.value[0].endswith('(100000 characters)') and len(q.value[0]) < 200
    assert len(q.reason[0]) < 400 and f'expected at most {contract.columns["comment"].max_length} characters' in q.reason[0]
    stored = store.sql("select max(length(value)) as n from quarantine", tables=['quarantine']).n.iloc[0]
    assert stored < 200
    assert read_snapshot(store, v.snapshot_id).comment[4] == 'z' * 100_000  # the raw snapshot keeps it


def test_timestamp_in_the_future(store, contract, tmp_path):
    b = make_batch(); b.loc[9, 'applied_at'] = pd.Timestamp('2099-01-01')
    v, q = run(store, contract, b)
    assert q[['row', 'rule', 'column']].values.tolist() == [[9, 'future', 'applied_at']]
    assert q.value[0].startswith('2099-01-01')
    v, q = run(store, contract, to_csv(b, tmp_path / 'batch.csv'))
    assert rules_by_row(q) == {9: ['future']}


@pytest.fixture
def local_time_zone():
    "Call with a time zone name to run the rest of the test with the machine's local time zone set to it."
    old = os.environ.get('TZ')
    def set_tz(tz):
        os.environ['TZ'] = tz; time.tzset()
    yield set_tz
    if old is None: os.environ.pop('TZ', None)
    else: os.environ['TZ'] = old
    time.tzset()


@pytest.mark.parametrize('tz', ['UTC', 'Asia/Tokyo', 'America/New_York'])
def test_future_of_timezone_aware_timestamps(store, local_time_zone, tz):
    "Whether a time is in the future does not depend on the local time zone of the machine running the gate."
    local_time_zone(tz)
    ref = REF.assign(applied_at=REF.applied_at.dt.tz_localize('UTC'))
    c = infer_contract(store, ingest(store, 'utc_applications', ref), key='id', time_column='applied_at')
    now = pd.Timestamp('2025-03-01 12:00', tz='UTC')
    b = make_batch(10).assign(applied_at=[now - pd.Timedelta(hours=3)] * 9 + [now + pd.Timedelta(hours=3)])
    v = validate(store, ingest(store, 'utc_applications', b), c, now=now.to_pydatetime())
    q = check(store, v)
    assert rules_by_row(q) == {9: ['future']}


@pytest.mark.parametrize('col', ['x', 'X', 'my col', 'a"b', 'select', 'sélection', 'value'])
def test_awkward_column_names(store, col):
    "Any column name a DataFrame or CSV header can hold is validated like any other (here: a range violation in it)."
    ref = pd.DataFrame({'id': np.arange(500), col: np.linspace(0, 1, 500)})
    c = infer_contract(store, ingest(store, 'awkward', ref), key='id')
    b = pd.DataFrame({'id': np.arange(1000, 1100), col: np.linspace(0, 1, 100)})
    b.loc[7, col] = 50.0
    v = validate(store, ingest(store, 'awkward', b), c)
    q = check(store, v)
    assert q[['row', 'rule', 'column', 'value']].values.tolist() == [[7, 'range', col, '50.0']]


# --- time columns that are not times ---------------------------------------------------------------------------------------

def wildproof(*args, cwd):
    "The command line in a real process, with the store of the test's settings; (return code, stdout, stderr)."
    import subprocess, sys
    from pathlib import Path
    exe = Path(sys.executable).parent / 'wildproof'
    r = subprocess.run([str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def one_line_error(rc, err, *parts):
    assert rc == 1 and 'Traceback' not in err, err
    assert err.startswith('wildproof: error: ') and len(err.strip().splitlines()) == 1, err
    for p in parts: assert p in err, err


def test_integer_year_is_refused_as_time_column(tmp_path):
    f = to_csv(pd.DataFrame({'id': range(50), 'year': np.repeat(np.arange(2014, 2024), 5), 'x': np.linspace(0, 1, 50)}), tmp_path / 'yearly.csv')
    rc, out, err = wildproof('ingest', 'yearly', f, cwd=tmp_path)
    assert rc == 0 and 'ingested as yearly@' in out, err
    rc, out, err = wildproof('contract', 'infer', 'yearly@latest', '--key', 'id', '--time-column', 'year', cwd=tmp_path)
    one_line_error(rc, err, "the time column 'year' is of type integer (values 2014 to 2023), not a timestamp or date",
                   "pd.to_datetime(df['year'].astype(int).astype(str), format='%Y')")
    assert not (tmp_path / 'yearly.contract.yaml').exists()
    # without a time column the contract is inferred; a hand edit that makes the year the time column is refused on register
    rc, out, err = wildproof('contract', 'infer', 'yearly@latest', '--key', 'id', cwd=tmp_path)
    assert rc == 0, err
    y = tmp_path / 'yearly.contract.yaml'
    y.write_text(y.read_text().replace('key: id\n', 'key: id\ntime_column: year\n'))
    rc, out, err = wildproof('contract', 'register', y, cwd=tmp_path)
    one_line_error(rc, err, "the time column 'year' is of type integer: a time column must be of type timestamp or date")


def test_text_time_column_that_does_not_parse_is_refused(tmp_path):
    when = pd.date_range('2024-01-01', periods=50, freq='D').strftime('%d/%m/%Y')
    f = to_csv(pd.DataFrame({'id': range(50), 'when': when, 'x': np.linspace(0, 1, 50)}), tmp_path / 'ref.csv')
    rc, out, err = wildproof('ingest', 'dmy', f, cwd=tmp_path)
    assert rc == 0, err
    rc, out, err = wildproof('contract', 'infer', 'dmy@latest', '--key', 'id', '--time-column', 'when', cwd=tmp_path)
    one_line_error(rc, err, "the time column 'when' is text, and 50 of 50 values do not read as a time (for example '01/01/2024')",
                   "with the format it is written in, for example df['when'] = pd.to_datetime(df['when'], format='%d/%m/%Y')")


def test_csv_of_iso_times_is_a_time_column(store, tmp_path):
    "`ingest` reads a CSV column of ISO 8601 times (with a T or a space, with or without fractions and offset) as times."
    f = to_csv(make_batch(4).assign(applied_at=['2024-06-01', '2024-06-01 10:00:00', '2024-06-01T10:00:00.123', '2024-06-02 00:00']), tmp_path / 'b.csv')
    snap = ingest(store, 'iso', f)
    assert str(snap.schema.field('applied_at').type) == 'timestamp[ns]'   # stored in microseconds
    assert infer_contract(store, snap, key='id', time_column='applied_at').columns['applied_at'].kind == 'timestamp'
    f = to_csv(make_batch(2).assign(applied_at=['2024-06-01T10:00:00+02:00', '2024-06-01T10:00:00Z']), tmp_path / 'b.csv')
    t = read_snapshot(store, ingest(store, 'iso', f)).applied_at
    assert str(t.dtype) == 'datetime64[s, UTC]' and t.tolist() == [pd.Timestamp('2024-06-01 08:00', tz='UTC'), pd.Timestamp('2024-06-01 10:00', tz='UTC')]


def test_batch_time_column_that_does_not_parse(store, contract, tmp_path):
    "A batch's time column as text: a time that does not parse is quarantined with its value; mostly unparsable, the batch is rejected."
    b = make_batch(50).assign(applied_at=lambda x: x.applied_at.astype(str))
    b.loc[7, 'applied_at'] = '31/06/2024 12:00'
    c = tmp_path / 'c.yaml'; contract.save(c)
    rc, out, err = wildproof('validate', to_csv(b, tmp_path / 'batch.csv'), '--contract', c, cwd=tmp_path)
    assert rc == 0 and out.startswith('accepted:') and '1 quarantined' in out and 'Traceback' not in err, out + err
    rc, out, err = wildproof('quarantine', '--rule', 'type', cwd=tmp_path)
    assert 'applied_at = 31/06/2024 12:00: expected a timestamp' in out, out + err
    v, q = run(store, contract, tmp_path / 'batch.csv')
    assert q[['row', 'rule', 'column', 'value']].values.tolist() == [[7, 'type', 'applied_at', '31/06/2024 12:00']]
    b['applied_at'] = 'soon'
    rc, out, err = wildproof('validate', to_csv(b, tmp_path / 'batch2.csv'), '--contract', c, cwd=tmp_path)
    assert rc == 1 and out.startswith('rejected:') and 'Traceback' not in err, out + err
    assert 'column applied_at is text and 100% of its values are not timestamp values: the contract expects timestamp' in out


def test_gate_by_day_of_batches_whose_time_is_not_a_time(store, contract, tmp_path):
    "Monitoring counts the gate's rows by day of the time column; a time that is not a time puts its row in no day, and nothing raises."
    from wildproof.monitoring import _gate_days
    text = make_batch(48).assign(applied_at=lambda x: x.applied_at.astype(str))
    text.loc[0, 'applied_at'] = 'not a time'
    cases = {'text, one bad': text, 'integer': make_batch(48).assign(applied_at=2024), 'missing': make_batch(48).drop(columns='applied_at'),
             'all text': make_batch(48).assign(applied_at='soon')}
    for name, b in cases.items():
        v, q = run(store, contract, to_csv(b, tmp_path / 'batch.csv'))
        days = _gate_days(store, v.validation_id, v.snapshot_id, v.status, 'applied_at')
        assert days.n.sum() == 48, name
        placed = days[days.day.notna()]
        if name == 'text, one bad':
            assert v.status == 'accepted' and placed.n.sum() == 47 and days.quarantined.sum() == 1
            assert sorted(pd.to_datetime(placed.day).dt.strftime('%Y-%m-%d')) == ['2024-06-01', '2024-06-02']
        else: assert v.status == 'rejected' and len(placed) == 0 and days.rejected.sum() == 48, name


@pytest.mark.parametrize('args', [['monitor', '--as-of', 'tomorrow-ish'], ['monitor', '--window', '2025-13-45'], ['drill-down', 'm', '31/02/2025']])
def test_bad_dates_on_the_command_line(tmp_path, args):
    rc, out, err = wildproof(*args, cwd=tmp_path)
    assert rc == 2 and 'Traceback' not in err and 'is not a date or time (for example 2025-04-09' in err, err
