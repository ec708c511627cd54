"""Fuzzing (issue 21). Schemathesis generates requests from the service's own OpenAPI document and sends them to the real
service (`wildproof serve` in its own process on 127.0.0.1, two workers): with a valid token no request gets a 5xx,
without one no protected operation answers 2xx. Hypothesis generates arbitrary JSON-like records and bodies for the
contract checker and the request parsing the service uses: nothing raises but the documented refusal, and every record
is either accepted or refused with a reason, none lost. Bounded: about 30 examples per operation, a minute in all.
"""
import json, math, time
from datetime import date, datetime, timezone

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.test_serving import Server, client_token
from tests.test_service_auth import small_world
from wildproof.contracts import ColumnRule, Contract, check_rows, typed_frame
from wildproof.service import RequestRefused, parse_json, request_records

FUZZ = settings(max_examples=30, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------------------------------- the service

@pytest.fixture(scope='module')
def fuzzed_service():
    "The small world's service, two workers; a client with predict and outcomes (not admin): (server, its token's headers)."
    f, _ = small_world()
    with Server(f, workers=2, scopes=('predict', 'outcomes')) as srv:
        yield srv


@pytest.fixture(scope='module')
def operations(fuzzed_service):
    "Every operation of the service's OpenAPI document (fetched with the token: the document is behind it too)."
    srv = fuzzed_service
    schema = schemathesis.openapi.from_url(srv.url + '/openapi.json', headers=srv.headers, timeout=30)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert sorted(f'{o.method.upper()} {o.path}' for o in ops) == ['GET /health', 'GET /version', 'POST /outcomes', 'POST /predict']
    return ops


def fuzz(operations, check):
    """Run `check(case)` on cases Hypothesis generates for each operation, fitting the document (positive) and not (negative);
    a failure names the operation and the mode. (schemathesis' pytest plugin, `from_fixture`, does not run under pytest 9.)"""
    from schemathesis.generation.modes import GenerationMode
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if op.method.upper() == 'POST' else (GenerationMode.POSITIVE,):   # a GET has nothing to break
            @given(case=op.as_strategy(generation_mode=mode))
            @FUZZ
            def run(case): check(case)
            try: run()
            except Exception as e: raise AssertionError(f'{op.method.upper()} {op.path} ({mode.value} cases): {e}') from e


@pytest.mark.timeout(400)
def test_no_request_with_a_valid_token_gets_a_server_error(fuzzed_service, operations):
    srv, seen = fuzzed_service, []
    def check(case):
        r = case.call(base_url=srv.url, headers=srv.headers, timeout=60)
        seen.append(r.status_code)
        assert r.status_code < 500, f'{r.status_code}: {r.text[:500]}\nbody: {str(case.body)[:500]}'
        if r.status_code >= 400: assert 'detail' in r.json(), r.text[:500]   # a refusal says why, in one JSON object
        if r.status_code == 401:   # only when a negative case left out or changed the token ("missing Authorization" is one of its mutations)
            assert r.request.headers.get('Authorization') != srv.headers['Authorization'], r.text
    t0 = time.perf_counter()
    fuzz(operations, check)
    assert 200 in seen and any(400 <= c < 500 for c in seen), sorted(set(seen))   # both kinds of answer were reached
    print(f'{len(seen)} fuzzed requests with a token in {time.perf_counter() - t0:.1f} s: ' +
          ', '.join(f'{c} x{seen.count(c)}' for c in sorted(set(seen))))


@pytest.mark.timeout(400)
def test_no_request_without_a_valid_token_succeeds(fuzzed_service, operations):
    srv, seen = fuzzed_service, []
    def check(case):
        for headers in ({}, {'Authorization': 'Bearer wp_' + 'A' * 43}, {'Authorization': 'Basic ' + srv.token}):
            r = case.call(base_url=srv.url, headers=headers, timeout=60)
            seen.append(r.status_code)
            if case.path == '/health': assert r.status_code in (200, 503), r.status_code   # open by design
            else: assert r.status_code == 401, f'without a valid token -> {r.status_code}: {r.text[:300]}'
    fuzz(operations, check)


# ---------------------------------------------------------------------------------------------------- the contract checker

CONTRACT = Contract('fuzzed', {
    'id': ColumnRule('string', nullable=False, max_length=20),
    'n': ColumnRule('integer', nullable=False, min=0, max=1000),
    'big': ColumnRule('integer'),                           # no range: any whole number a request may bring
    'x': ColumnRule('float', min=-1.5, max=1e6),
    'y': ColumnRule('float', allow_nonfinite=True),
    'flag': ColumnRule('boolean'),
    'kind': ColumnRule('string', categories=['a', 'b', 'c']),
    'at': ColumnRule('timestamp', nullable=False, min='2000-01-01', max='2100-01-01'),
    'day': ColumnRule('date'),
}, key='id', time_column='at', extra_columns='reject')
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_like = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)
plausible = {   # values near what each kind accepts, so that many records pass and the accepted path is exercised too
    'string': st.text(max_size=25) | st.integers(),
    'integer': st.integers(-5, 1005) | st.integers() | st.integers(2**62, 2**66).map(lambda v: v * (-1) ** (v % 2)) | st.floats(allow_nan=True)
               | st.from_regex(r'\A\s?-?\d{1,25}(\.0)?\s?\Z'),   # beyond 64 bits: refused (it once passed and broke typing the frame)
    'float': st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.from_regex(r'\A-?\d{1,6}(\.\d{1,4})?([eE]-?\d{1,3})?\Z') | st.sampled_from(['nan', 'inf', '-inf']),
    'boolean': st.booleans() | st.sampled_from(['true', 'False', 'yes', '0', 't', 'maybe', 1, 2]),
    'timestamp': st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(datetime.isoformat)
                 | st.datetimes(timezones=st.timezones()).map(datetime.isoformat) | st.text(max_size=12),
    'date': st.dates().map(date.isoformat) | st.text(max_size=12),
}


@st.composite
def records(draw):
    "A record as a client might send it: some of the contract's columns (plausible or arbitrary values), perhaps unknown ones; or no object at all."
    if draw(st.integers(0, 9)) == 0: return draw(json_like)
    rec = {}
    for col, rule in CONTRACT.columns.items():
        how = draw(st.integers(0, 9))
        if how == 0: continue                                     # missing
        rec[col] = draw(json_like) if how == 1 else None if how == 9 else draw(plausible[rule.kind])
    if draw(st.integers(0, 9)) == 0: rec.update(draw(st.dictionaries(st.text(max_size=8), json_like, max_size=2)))
    if 'kind' in rec and draw(st.booleans()): rec['kind'] = draw(st.sampled_from(['a', 'b', 'c']))
    return rec


TYPES = {'string': (str,), 'integer': (int,), 'float': (float,), 'boolean': (bool,), 'timestamp': (pd.Timestamp,), 'date': (pd.Timestamp,)}


@given(st.lists(records(), max_size=8))
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_every_record_is_accepted_typed_or_refused_with_a_reason(recs):
    typed, reasons = check_rows(CONTRACT, recs, now=NOW)   # raises nothing: a bad record is a reason, not an exception
    assert len(typed) == len(reasons) == len(recs)        # none lost
    accepted = []
    for rec, row, why in zip(recs, typed, reasons):
        assert isinstance(why, list) and all(isinstance(w, str) and w for w in why), why
        if why: continue
        assert isinstance(rec, dict) and set(row) == set(CONTRACT.columns)
        for col, rule in CONTRACT.columns.items():
            v = row[col]
            if v is None: assert rule.nullable and rec.get(col) is None, (col, rec.get(col)); continue
            assert isinstance(v, TYPES[rule.kind]) and not (rule.kind == 'integer' and isinstance(v, bool)), (col, v)
            if rule.kind in ('integer', 'float') and math.isfinite(v):
                assert (rule.min is None or v >= rule.min) and (rule.max is None or v <= rule.max), (col, v)
            if rule.kind == 'float' and not math.isfinite(v): assert rule.allow_nonfinite, (col, v)
        if row['kind'] is not None: assert row['kind'] in CONTRACT.columns['kind'].categories
        accepted.append(row)
    frame = typed_frame(CONTRACT, accepted)               # what the scoring thread builds from the accepted records
    assert len(frame) == len(accepted) and list(frame.columns) == list(CONTRACT.columns)


bodies = st.binary(max_size=200) | json_like.map(lambda v: json.dumps(v).encode()) \
         | st.lists(records(), max_size=4).map(lambda rs: json.dumps(rs, default=str).encode()) \
         | st.lists(records(), max_size=4).map(lambda rs: json.dumps({'records': rs}, default=str).encode()) \
         | st.integers(4000, 6000).map(lambda n: b'1' * n) | st.integers(1, 3000).map(lambda n: b'[' * n + b']' * n)


@given(bodies)
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_a_body_is_records_or_a_refusal_with_its_status(body):
    try: recs = request_records(parse_json(body), max_records=3)
    except RequestRefused as e:
        assert e.status in (400, 413, 422) and str(e) and '\n' not in str(e), (e.status, str(e))
        return
    assert isinstance(recs, list) and 1 <= len(recs) <= 3
    typed, reasons = check_rows(CONTRACT, recs, now=NOW)
    assert len(reasons) == len(recs) and all(isinstance(w, list) for w in reasons)
