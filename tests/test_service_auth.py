"""Who may call the REST service (issue 21): `wildproof serve` in its own process on 127.0.0.1, over a real store and
MLflow registry, its clients in a real principals file. Every route but /health needs a bearer token with the route's
scope (401 without or with an unknown one, 403 with the wrong scope), a revoked token is refused within
`[access] token_reload_seconds`, a client past its burst gets 429 with Retry-After, the OpenAPI document declares the
scheme, and `--no-auth` is refused beyond 127.0.0.1."""
import atexit, functools, json, shutil, tempfile, time, timeit
from pathlib import Path

import httpx
import pytest

from tests.test_cli import run
from tests.test_serving import ENV, MODEL, Server, ServerDied, client_token, free_port, report
from tests.worlds import credit_world
from wildproof import principals
from wildproof.examples.credit import world
from wildproof.registry import _move
from wildproof.settings import load_settings
from wildproof.store import Store
from wildproof.training import mlflow_release, train

RELOAD = 0.5   # [access] token_reload_seconds of the servers here


@functools.cache
def small_world() -> tuple[Path, list]:
    """A small world with v1 in production, built once per test session (this module and tests/test_fuzz.py serve it):
    (its settings file, later records as a client sends them). Each server adds its own clients beside the settings file."""
    d = Path(tempfile.mkdtemp(prefix='wildproof-served-'))
    atexit.register(shutil.rmtree, d, True)
    f = d / 'settings.ini'
    f.write_text(f'[store]\nroot = {d / "store"}\n', encoding='utf-8')
    settings = load_settings(f, env={})
    store = Store(d / 'store')
    _, rest, ref, spec = credit_world(store, rows=10_000, seed=4)
    _move(store, MODEL, 'production', train(store, ref, spec, settings=settings).version, 'promote', 'test')
    mlflow_release(store, settings)
    records = json.loads(rest.drop(columns=[world.target, world.outcome_time_column]).head(50).to_json(orient='records', date_format='iso'))
    return f, records


@pytest.fixture(scope='module')
def served(): return small_world()


@pytest.fixture(scope='module')
def srv(served):
    "The service in two worker processes (each checks tokens), with an admin client (`.client`) and a client per scope."
    f, records = served
    with Server(f, workers=2, WILDPROOF_ACCESS_TOKEN_RELOAD_SECONDS=str(RELOAD)) as s:
        s.records = records
        s.tokens = {scope: client_token(f.parent, f'only-{scope}', [scope])[1] for scope in ('predict', 'outcomes')}
        time.sleep(RELOAD + 0.2)   # the new clients reach both workers
        yield s


def bearer(token: str) -> dict: return {'Authorization': f'Bearer {token}'}


def one_line(r: httpx.Response) -> str:
    "The refusal's reason: a JSON object {detail: one line}."
    body = r.json()
    assert set(body) == {'detail'} and isinstance(body['detail'], str) and '\n' not in body['detail'], body
    return body['detail']


def calls(srv, headers: dict | None = None) -> dict:
    "The status of each protected route's call (valid bodies) with `headers`, over a fresh connection."
    with httpx.Client(base_url=srv.url, timeout=30, headers=headers or {}) as c:
        outcome = [dict(entity_key=str(srv.records[0][world.key]), outcome=1, observed_at='2026-01-01T00:00:00Z')]
        return {'/predict': c.post('/predict', json=srv.records[0]), '/outcomes': c.post('/outcomes', json=outcome),
                '/version': c.get('/version'), '/docs': c.get('/docs'), '/openapi.json': c.get('/openapi.json')}


@pytest.mark.timeout(400)
def test_health_is_open_and_every_other_route_needs_a_token(srv):
    with httpx.Client(base_url=srv.url, timeout=30) as anon:
        assert anon.get('/health').status_code == 200   # a load balancer's probe carries no token
    for headers, challenge in [(None, 'Bearer realm="wildproof"'),
                               (bearer('wp_' + 'x' * 43), 'Bearer realm="wildproof", error="invalid_token"'),   # well formed, unknown
                               (bearer('not-even-a-token'), 'Bearer realm="wildproof", error="invalid_token"'),
                               ({'Authorization': 'Basic dGVzdDp0ZXN0'}, 'Bearer realm="wildproof"'),         # another scheme: no bearer token
                               ({'Authorization': 'Bearer'}, 'Bearer realm="wildproof"')]:
        for route, r in calls(srv, headers).items():
            assert r.status_code == 401, (route, headers, r.status_code, r.text)
            assert r.headers['www-authenticate'] == challenge
            reason = one_line(r)
            assert ('no bearer token' in reason) if 'error=' not in challenge else reason == 'unknown or revoked token'
    assert one_line(calls(srv)['/predict']) == 'no bearer token: send Authorization: Bearer <token> (made by wildproof service-token)'


@pytest.mark.timeout(400)
def test_each_route_needs_its_scope_and_admin_holds_them_all(srv):
    got = {scope: {route: r.status_code for route, r in calls(srv, bearer(t)).items()} for scope, t in srv.tokens.items()}
    got['admin'] = {route: r.status_code for route, r in calls(srv, srv.headers).items()}
    assert got == {'predict': {'/predict': 200, '/outcomes': 403, '/version': 200, '/docs': 200, '/openapi.json': 200},
                   'outcomes': {'/predict': 403, '/outcomes': 200, '/version': 403, '/docs': 403, '/openapi.json': 403},
                   'admin': {'/predict': 200, '/outcomes': 200, '/version': 200, '/docs': 200, '/openapi.json': 200}}
    r = calls(srv, bearer(srv.tokens['predict']))['/outcomes']
    assert one_line(r) == 'client only-predict lacks the scope outcomes (it has predict)'
    assert r.headers['www-authenticate'] == 'Bearer realm="wildproof", error="insufficient_scope", scope="outcomes"'
    r = calls(srv, bearer(srv.tokens['outcomes']))['/predict']
    assert one_line(r) == 'client only-outcomes lacks the scope predict (it has outcomes)'
    # a refused request scored nothing: its request id is not in the audit log, beside an accepted one
    store = Store(srv.log.parent / 'store')
    with httpx.Client(base_url=srv.url, timeout=30, headers=srv.headers) as c:
        rid = c.post('/predict', json=srv.records[1], headers={'x-request-id': 'refusal-check'}).json()['request_id']
    refused = httpx.post(srv.url + '/predict', json=srv.records[1], headers={**bearer(srv.tokens['outcomes']), 'x-request-id': 'refused-one'}, timeout=30)
    assert refused.status_code == 403
    time.sleep(0.5)
    ids = set(store.sql("select request_id from predictions where request_id in ('refusal-check', 'refused-one')").request_id)
    assert ids == {rid}


@pytest.mark.timeout(400)
def test_the_openapi_document_declares_the_bearer_scheme(srv):
    spec = srv.client.get('/openapi.json').json()
    assert spec['components']['securitySchemes'] == {'bearer': {
        'type': 'http', 'scheme': 'bearer', 'bearerFormat': 'wp_<token>',
        'description': 'A client token from `wildproof service-token NAME --scope predict|outcomes|admin`.'}}
    for path, method in [('/predict', 'post'), ('/outcomes', 'post'), ('/version', 'get')]:
        assert spec['paths'][path][method]['security'] == [{'bearer': []}], path
    assert 'security' not in spec['paths']['/health']['get']
    assert set(spec['paths']) == {'/predict', '/outcomes', '/health', '/version'}   # the docs routes are not operations to call
    docs = srv.client.get('/docs')
    assert docs.status_code == 200 and 'swagger' in docs.text.lower() and '"/predict"' in docs.text   # the document inline: the page needs no second fetch


@pytest.mark.timeout(400)
def test_a_new_token_works_and_a_revoked_one_is_refused_within_the_reload_interval(srv, capsys):
    path = srv.log.parent / 'principals.json'
    token = principals.add_client(path, 'rotating', ['predict'])
    ok = lambda: all(httpx.get(srv.url + '/version', headers=bearer(token), timeout=30).status_code == 200 for _ in range(6))
    t0 = time.perf_counter()
    while not ok():
        assert time.perf_counter() - t0 < RELOAD + 2, 'a new client was not accepted within the reload interval'
        time.sleep(0.05)
    principals.revoke_client(path, 'rotating')
    t0 = time.perf_counter()
    while True:
        codes = [httpx.get(srv.url + '/version', headers=bearer(token), timeout=30).status_code for _ in range(4)]
        if set(codes) == {401}: break
        assert time.perf_counter() - t0 < RELOAD + 1.5, f'the revoked token was still accepted after {time.perf_counter() - t0:.2f} s'
        time.sleep(0.02)
    took = time.perf_counter() - t0
    # from then on refused by every worker (each re-reads the file on its own); the other clients are unaffected
    assert {httpx.get(srv.url + '/version', headers=bearer(token), timeout=30).status_code for _ in range(20)} == {401}
    assert {srv.client.get('/version').status_code for _ in range(4)} == {200}
    report(capsys, f'a revoked token refused by both workers {took:.2f} s after the revocation ([access] token_reload_seconds = {RELOAD})')


@pytest.mark.timeout(400)
def test_a_client_past_its_burst_gets_429_with_retry_after(served, tmp_path):
    f, records = served
    settings = tmp_path / 'settings.ini'   # the same store, a settings file of its own (its own principals file beside it)
    settings.write_text(f.read_text(), encoding='utf-8')
    other = bearer(client_token(tmp_path, 'other', ['predict'])[1])
    with Server(settings, workers=1, scopes=('predict',), WILDPROOF_SERVING_RATE_LIMIT_PER_SECOND='1', WILDPROOF_SERVING_RATE_LIMIT_BURST='3') as s:
        codes = [s.client.get('/version').status_code for _ in range(8)]   # the start's own probe took one of the 3
        k = codes.index(429)
        assert 2 <= k <= 4 and codes == [200] * k + [429] * (8 - k), codes
        r = s.client.post('/predict', json=records[0])
        assert r.status_code == 429 and r.headers['retry-after'] == '1'
        assert one_line(r).startswith(f'client tests-{s.port} is over its rate limit of 1 requests a second (burst 3) per worker: retry in 0.')
        assert httpx.get(s.url + '/version', headers=other, timeout=30).status_code == 200   # each client its own bucket
        time.sleep(1.05)
        assert s.client.post('/predict', json=records[0]).status_code == 200


@pytest.mark.timeout(400)
def test_no_auth_only_on_localhost_and_no_client_no_start(served, tmp_path):
    f, records = served
    settings = tmp_path / 'settings.ini'
    settings.write_text(f.read_text(), encoding='utf-8')
    env = {**ENV, 'WILDPROOF_SETTINGS': str(settings), 'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(tmp_path / 'principals.json')}
    for host in ('0.0.0.0', '192.0.2.1'):
        r = run('serve', '--model', MODEL, '--no-auth', '--host', host, '--port', free_port(), cwd=tmp_path, env=env, check=False)
        assert r.returncode == 1 and r.stderr.startswith('wildproof: error: [serving] auth = none (serve --no-auth) serves without tokens, so only on 127.0.0.1')
        assert 'Traceback' not in r.stderr and r.stderr.count('\n') == 1
    r = run('serve', '--model', MODEL, '--host', '0.0.0.0', '--port', free_port(), cwd=tmp_path, env={**env, 'WILDPROOF_SERVING_AUTH': 'none'}, check=False)
    assert r.returncode == 1 and 'only on 127.0.0.1, not on 0.0.0.0' in r.stderr
    r = run('serve', '--model', MODEL, '--host', '127.0.0.1', '--port', free_port(), cwd=tmp_path, env=env, check=False)   # tokens, but no client yet
    assert r.returncode == 1 and 'holds no service client: create one with `wildproof service-token NAME --scope predict`' in r.stderr
    assert 'Traceback' not in r.stderr


@pytest.mark.timeout(400)
def test_no_auth_on_localhost_serves_without_tokens_in_every_worker(served, tmp_path):
    import subprocess, sys
    f, records = served
    port = free_port()
    log = open(tmp_path / 'serve.log', 'wb')
    p = subprocess.Popen([sys.executable, '-m', 'wildproof.cli', 'serve', '--model', MODEL, '--no-auth', '--host', '127.0.0.1', '--port', str(port), '--workers', '2'],
                         env={**{k: v for k, v in __import__('os').environ.items() if not k.startswith('WILDPROOF_')}, **ENV, 'WILDPROOF_SETTINGS': str(f)},
                         cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        url, t0 = f'http://127.0.0.1:{port}', time.monotonic()
        while True:
            try:
                if httpx.get(url + '/health', timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            assert p.poll() is None and time.monotonic() - t0 < 150, (tmp_path / 'serve.log').read_text()
            time.sleep(0.1)
        assert 'NO AUTHENTICATION' in (tmp_path / 'serve.log').read_text()
        with httpx.Client(base_url=url, timeout=30) as c:
            assert {c.post('/predict', json=records[i]).status_code for i in range(10)} == {200}
            spec = c.get('/openapi.json').json()
            assert 'securitySchemes' not in spec.get('components', {})   # nothing to declare
    finally:
        p.terminate(); p.wait(60); log.close()


def test_a_token_check_costs_a_hash_and_a_lookup(tmp_path, capsys):
    from wildproof.service import RateLimiter
    path = tmp_path / 'principals.json'
    tokens = [principals.add_client(path, f'client-{i}', ['predict']) for i in range(50)]
    checker = principals.TokenChecker(path, 5)
    assert checker.check(tokens[7]).name == 'client-7' and checker.check('wp_' + 'x' * 43) is None
    n = 20_000
    check_us = min(timeit.repeat(lambda: checker.check(tokens[7]), number=n, repeat=3)) / n * 1e6
    rl = RateLimiter(1e9, 10**9)
    take_us = min(timeit.repeat(lambda: rl.take('client-7'), number=n, repeat=3)) / n * 1e6
    report(capsys, f'a token check {check_us:.2f} us (SHA-256 and a dict lookup; scrypt would be about 40,000 us), a rate-limit take {take_us:.2f} us')
    assert check_us < 50 and take_us < 50
