"""Batch records keep their inputs by reference to the snapshot row they scored (docs/decisions/0008).

On the default demo's store: every reader of a record's inputs must see exactly what the JSON copy the scoring core used to
write would have shown (DuckDB's `to_json` of the accepted rows, read back with `json_extract_string`), and the log verifies.
"""
import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from wildproof.audit import input_number, input_text, inputs_as_json, inputs_join, verify
from wildproof.contracts import get_contract, latest_validation
from wildproof.scoring import _json_column
from wildproof.store import Store


@pytest.mark.timeout(600)
def test_batch_inputs_by_reference_read_as_their_json_copies_did(default_demo):
    store = Store(default_demo.store)
    batch = store.sql("""select input_snapshot, count(*) as n, count(inputs_json) as with_json, count(feature_values) as with_features
                         from predictions where source = 'batch' and route <> 'shadow' group by 1 order by n desc""")
    assert len(batch) > 10 and batch.input_snapshot.notna().all()          # every batch record points at its snapshot row
    assert batch.with_json.sum() == 0 and (batch.with_features == batch.n).all()
    online = store.sql("select count(*) as n, count(inputs_json) as j, count(input_snapshot) as s from predictions where source = 'rest'").iloc[0]
    assert online.n > 0 and online.j == online.n and online.s == 0          # online records keep the request as sent

    sid = batch.input_snapshot.iloc[0]
    contract = get_contract(store, 'loan_applications')
    v = latest_validation(store, sid, contract)
    rows = v.accepted()
    cols = list(contract.columns)
    con = duckdb.connect()
    old = pd.DataFrame({'input_row': v.accepted_rows(), 'j': _json_column(con, rows[cols]).to_pylist()})   # what score_frame wrote before
    con.register('old', old)
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(rows[c])]
    expect = con.execute(f"""select input_row, {', '.join(f"TRY_CAST(json_extract_string(j, '$.{c}') AS DOUBLE) as {c}" if c in numeric
                                                       else f"json_extract_string(j, '$.{c}') as {c}" for c in cols)}, j from old order by 1""").df()
    con.close()

    c2 = store.connect(['predictions'])
    where = "p.input_snapshot = $s and p.route <> 'shadow'"
    got = c2.execute(f"""select p.input_row, {', '.join(f'{input_number(c)} as {c}' if c in numeric else f'{input_text(c)} as {c}' for c in cols)},
                                {inputs_as_json(cols)} as j
                         from predictions p {inputs_join(store, c2, cols, where=where, params=dict(s=sid))} where {where} order by 1""", dict(s=sid)).df()
    c2.close()
    assert len(got) == len(expect) == v.rows_accepted
    for c in cols:
        if c in numeric: np.testing.assert_array_equal(got[c].to_numpy(float), expect[c].to_numpy(float), err_msg=c)
        else: assert got[c].tolist() == expect[c].tolist(), c
    assert [json.loads(x) for x in got.j] == [json.loads(x) for x in expect.j]   # retraining and replay parse these

    v = verify(store)
    assert v.ok and v.records == store.sql('select count(*) as n from predictions').n.iloc[0], v


@pytest.mark.timeout(300)
def test_audit_show_names_what_the_model_saw(default_demo):
    "`wildproof audit show`: a batch record's inputs come from its snapshot row and its derived features are named; an online one's as sent."
    from tests.test_cli import run
    store = Store(default_demo.store)
    ids = store.sql("""select (select request_id from predictions where source = 'batch' and route = 'champion' order by seq limit 1) as b,
                              (select request_id from predictions where source = 'rest' and route = 'champion' and features_json is not null order by seq limit 1) as o""").iloc[0]
    env = {'MLFLOW_DISABLE_TELEMETRY': 'true'}
    for rid in (ids.b, ids.o):
        shown = json.loads(run('--store', str(default_demo.store), 'audit', 'show', rid, cwd=default_demo.root, env=env).stdout.split('\n}\n')[0] + '\n}')
        assert shown['request_id'] == rid and shown['inputs']['application_id'] == int(store.sql(
            'select entity_key from predictions where request_id = $r', dict(r=rid)).entity_key.iloc[0])
        assert set(shown['features']) >= {'loan_to_income', 'payment_to_income', 'region_default_known', 'region_default_rate'}
    r = run('--store', str(default_demo.store), 'audit', 'show', 'no-such-request', cwd=default_demo.root, env=env, check=False)
    assert r.returncode == 1 and "no prediction record with request id 'no-such-request'" in r.stdout + r.stderr and 'Traceback' not in r.stderr
