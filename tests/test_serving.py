"""The REST scoring service as it runs: `wildproof serve` in its own process on 127.0.0.1, over a real store
(Delta tables, DuckDB) and a real MLflow SQLite registry; batch scoring, outcomes and replay from the shell.

One small world is trained once for the module (v1 production, v2 staging = challenger); each test that changes
the store works on its own copy. MLflow keeps the artifact location as an absolute path, so a copy still reads
its models from the module's store; a test that must break a model trains its own version to break.
"""
import json, os, re, shutil, signal, socket, subprocess, sys, threading, time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.test_cli import run
from wildproof.examples.credit import world
from wildproof.examples.credit.features import credit_spec
from wildproof.contracts import check_records, get_contract, infer_contract
from wildproof.datasets import ingest
from wildproof.features import build_features
from wildproof.settings import load_settings
from wildproof.store import Store

ENV = {'MLFLOW_DISABLE_TELEMETRY': 'true', 'OMP_NUM_THREADS': '1'}
MODEL = 'credit_risk'


# ---------------------------------------------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class ServerDied(RuntimeError):
    "`wildproof serve` exited before it answered."


def client_token(folder: Path, name: str, scopes=('admin',)) -> tuple[Path, str]:
    "A service client `name` with `scopes` added to the principals file in `folder`: (the file, its bearer token)."
    from wildproof import principals
    f = folder / 'principals.json'
    return f, principals.add_client(f, name, list(scopes))


UNLIMITED = dict(WILDPROOF_SERVING_RATE_LIMIT_PER_SECOND='1000000', WILDPROOF_SERVING_RATE_LIMIT_BURST='1000000')   # for the tests not about rates


class Server:
    """`wildproof serve` in a subprocess on 127.0.0.1 and a free port, with the settings file `settings` and extra env vars.
    Its clients authenticate as the service should be used: a client with `scopes` is added to a principals file beside
    `settings` and `.client` sends its token (`.headers`); its rate limit is lifted unless `env` sets one."""
    def __init__(self, settings: Path, *, log: Path | None = None, model: str = MODEL, workers: int = 1, scopes=('admin',), **env):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        principals, self.token = client_token(settings.parent, f'tests-{self.port}', scopes)
        self.headers = {'Authorization': f'Bearer {self.token}'}
        e = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
        e.update(ENV, WILDPROOF_SETTINGS=str(settings), WILDPROOF_ACCESS_PRINCIPALS_FILE=str(principals), **UNLIMITED)
        e.update({k: str(v) for k, v in env.items()})
        self.log = log or settings.parent / f'serve-{self.port}.log'
        self._out = open(self.log, 'wb')
        self.proc = subprocess.Popen([sys.executable, '-m', 'wildproof.cli', 'serve', '--model', model, '--host', '127.0.0.1', '--port', str(self.port),
                                      '--workers', str(workers)],
                                     env=e, cwd=settings.parent, stdout=self._out, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while True:   # /version answers even when the service is degraded (then /health is 503)
            if self.proc.poll() is not None:
                self._out.close()
                raise ServerDied(f'wildproof serve exited with {self.proc.returncode}:\n{self.output[-4000:]}')
            try:
                if httpx.get(self.url + '/version', timeout=2, headers=self.headers).status_code == 200: break
            except httpx.TransportError: pass
            if time.monotonic() - t0 > 150:   # two workers took 40 s to answer at a load average of 10
                self.stop()
                raise RuntimeError(f'wildproof serve did not answer within 150 s:\n{self.output[-4000:]}')
            time.sleep(0.1)
        self.client = httpx.Client(base_url=self.url, timeout=30, headers=self.headers)

    @property
    def output(self) -> str: return self.log.read_text(errors='replace')

    def version(self) -> dict: return self.client.get('/version').json()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._close()

    def stop(self) -> int | None:
        "SIGTERM (uvicorn shuts down gracefully: the audit writer commits what is queued), SIGKILL if it hangs."
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try: self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill(); self.proc.wait(30)
        self._close()
        return self.proc.returncode

    def _close(self):
        if hasattr(self, 'client'): self.client.close()
        self._out.close()

    def __enter__(self): return self
    def __exit__(self, *exc): self.stop()


def cli(settings: Path, *args, check=True):
    "The `wildproof` command line with the settings file `settings`."
    return run(*args, cwd=settings.parent, env={**ENV, 'WILDPROOF_SETTINGS': str(settings)}, check=check)


def wait_for(predicate, timeout: float = 60, every: float = 0.05):
    "Poll `predicate` until it is truthy; returns (its value, seconds taken); fails after `timeout` seconds."
    t0 = time.perf_counter()
    while True:
        v = predicate()
        if v: return v, time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout: pytest.fail(f'not reached within {timeout} s')
        time.sleep(every)


def report(capsys, text: str):
    "Print a measured figure where the person running the tests sees it, whatever pytest's capture."
    with capsys.disabled(): print(f'\n[measured] {text}')


def audit_of(store: Store, ids) -> pd.DataFrame:
    "The audit records whose request_id is in `ids`."
    return store.sql('select * from predictions where list_contains($ids, request_id) order by seq', dict(ids=list(ids)))


def rows_of(store: Store, request_id: str) -> pd.DataFrame:
    "The audit records of one request (a batch's records carry `<id>-<index>`)."
    return store.sql("select * from predictions where request_id = $r or request_id like $r || '-%' order by seq", dict(r=request_id))


# ---------------------------------------------------------------------------------------------------- the world

@dataclass
class Trained:
    root: Path            # the module's store (never changed after the fixture)
    reference: pd.DataFrame
    apps: pd.DataFrame    # later loan applications, without their outcome
    truth: pd.DataFrame   # their outcomes
    records: list         # `apps` as a client sends them (JSON)
    v1: object
    v2: object

    def expected(self, version, records) -> np.ndarray:
        "What the trained pipeline of `version` ('1' or '2') scores for `records`: training's own code path, by hand."
        t = {'1': self.v1, '2': self.v2}[str(version)]
        ids = [r[world.key] for r in records]
        rows = self.apps.set_index(world.key).loc[ids].reset_index()
        return t.model.predict_proba(build_features(rows, t.features, history=self.reference))[:, 1]


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Trained:
    from wildproof.training import train
    from wildproof.registry import _move
    d = tmp_path_factory.mktemp('serving')
    f = d / 'settings.ini'
    f.write_text(f'[store]\nroot = {d / "store"}\n', encoding='utf-8')
    with pytest.MonkeyPatch.context() as mp:   # module fixtures run before the per-test settings: use this store's own
        for v in [v for v in os.environ if v.startswith('WILDPROOF_')]: mp.delenv(v)
        mp.setenv('WILDPROOF_SETTINGS', str(f))
        for k, v in ENV.items(): mp.setenv(k, v)
        settings = load_settings()
        store = Store(d / 'store')
        reference, rest = world.split_reference(world.generate_world(rows=20_000, seed=3), 6)
        ref = ingest(store, 'loans_reference', reference)
        contract = infer_contract(store, ref, name='loan_applications', key=world.key, time_column=world.time_column,
                                  exclude=[world.target, world.outcome_time_column], settings=settings).register(store)
        spec = credit_spec(store, 'loan_applications', model=MODEL).register(store)
        v1 = train(store, ref, spec, settings=settings)
        v2 = train(store, ref, spec, settings=settings, params=dict(max_leaf_nodes=7), seed=1)
        _move(store, MODEL, 'production', v1.version, 'promote', 'test')
        _move(store, MODEL, 'staging', v2.version, 'promote', 'test')
    assert (v1.version, v2.version) == ('1', '2')
    later = rest.head(3000).reset_index(drop=True)
    apps = later.drop(columns=[world.target, world.outcome_time_column])
    records = json.loads(apps.to_json(orient='records', date_format='iso'))
    _, why = check_records(contract, records)
    records = [r for r, w in zip(records, why) if not w]   # the world's later months hold broken rows; clients send valid ones here
    assert len(records) > 2500
    return Trained(d / 'store', reference, apps, later[[world.key, world.target, world.outcome_time_column]], records, v1, v2)


@pytest.fixture
def own_store(trained, settings_file) -> Store:
    "A copy of the module's store at the per-test settings' store root."
    shutil.copytree(trained.root, settings_file.parent / 'store')
    return Store(settings_file.parent / 'store')


@pytest.fixture(scope='module')
def shared(trained, tmp_path_factory):
    "One server with the default traffic policy, for the tests that only add records: (server, store, settings file)."
    d = tmp_path_factory.mktemp('shared')
    shutil.copytree(trained.root, d / 'store')
    f = d / 'settings.ini'
    f.write_text(f'[store]\nroot = {d / "store"}\n', encoding='utf-8')
    with Server(f) as srv:
        yield srv, Store(d / 'store'), f


def sacrificial_version(store: Store) -> tuple[str, list[Path]]:
    "Train a quick extra version in `store`, to be broken on purpose: (its version, the folders holding its artifacts)."
    import mlflow
    from wildproof.training import train
    from wildproof.registry import _client
    mv = train(store, 'loans_reference@latest', MODEL, params=dict(max_iter=5), seed=9, settings=load_settings())
    c = _client(store)
    source = c.get_model_version(MODEL, mv.version).source                  # models:/m-<id>: MLflow 3's logged model
    model_dir = Path(unquote(urlparse(c.get_logged_model(source.removeprefix('models:/')).artifact_location).path))
    run_dir = Path(unquote(urlparse(c.get_run(mv.run_id).info.artifact_uri).path))
    assert model_dir.is_dir() and run_dir.is_dir()
    return mv.version, [model_dir, run_dir]


# ---------------------------------------------------------------------------------------------------- basics

@pytest.mark.timeout(300)   # the first test of a module also waits for its world and a server: minutes at a load average of 10
def test_health_version_and_docs(shared):
    srv, store, _ = shared
    assert 'credit_risk v1 (production), challenger v2 (staging)' in srv.output
    h = srv.client.get('/health')
    assert h.status_code == 200 and h.json() == dict(status='ok', model=MODEL, champion='1', audit_writer='running', reason=None)
    v = srv.version()
    assert v['model'] == MODEL
    assert {k: (r['alias'], r['version'], r['available']) for k, r in v['routes'].items()} == {
        'champion': ('production', '1', True), 'challenger': ('staging', '2', True)}
    assert v['traffic'] == dict(canary_share=0.0, shadow=False, unsure_band=None, fallback_decision='review')
    docs = srv.client.get('/docs')
    assert docs.status_code == 200 and 'swagger' in docs.text.lower()
    spec = srv.client.get('/openapi.json').json()
    assert {'/predict', '/outcomes', '/health', '/version'} <= set(spec['paths'])
    body = json.dumps(spec['paths']['/predict']['post']['requestBody'])
    assert '"income"' in body and '"east"' in body   # the record schema comes from the data contract (a region category)


@pytest.mark.timeout(300)   # the first test of a module also waits for its world and a server: minutes at a load average of 10
def test_answers_are_the_models_and_are_in_the_audit_log(shared, trained):
    srv, store, _ = shared
    recs = trained.records
    # one record, as an object
    r = srv.client.post('/predict', json=recs[0])
    assert r.status_code == 200
    one = r.json()
    p = one['predictions'][0]
    assert (p['route'], p['model'], p['version'], p['entity_key'], p['review'], p['reasons']) == ('champion', MODEL, '1', str(recs[0][world.key]), False, [])
    assert abs(p['score'] - trained.expected('1', recs[:1])[0]) < 1e-9
    assert p['decision'] == ('decline' if p['score'] >= 0.25 else 'approve')
    # a batch, as an array and as {"records": [...]}, with the client's own request id
    answers = {}
    for body, rid in ((recs[1:41], 'batch-array-1'), ({'records': recs[41:81]}, 'batch-records-1')):
        r = srv.client.post('/predict', json=body, headers={'X-Request-ID': rid})
        assert r.status_code == 200 and r.json()['request_id'] == rid
        answers[rid] = r.json()['predictions']
    batch = recs[1:81]
    preds = answers['batch-array-1'] + answers['batch-records-1']
    assert [x['request_id'] for x in answers['batch-array-1']] == [f'batch-array-1-{i}' for i in range(40)]
    assert [x['entity_key'] for x in preds] == [str(x[world.key]) for x in batch]
    assert {(x['route'], x['version']) for x in preds} == {('champion', '1')}
    np.testing.assert_allclose([x['score'] for x in preds], trained.expected('1', batch), rtol=0, atol=1e-9)
    # every answer is in the audit log, as it was answered, with the inputs it was given
    served = [p] + preds
    log = audit_of(store, [x['request_id'] for x in served]).set_index('request_id')
    assert len(log) == len(served) == 81
    for x, rec in zip(served, recs[:81]):
        a = log.loc[x['request_id']]
        assert (a.route, a.version, a.decision, bool(a.review), a.source, a.entity_key) == ('champion', '1', x['decision'], False, 'rest', x['entity_key'])
        assert a.score == x['score'] and json.loads(a.inputs_json) == rec and json.loads(a.features_json)
    # an outcome reported later is recorded against the request
    r = srv.client.post('/outcomes', json=[dict(request_id=one['request_id'], outcome=1, observed_at='2026-01-01T00:00:00Z')])
    assert r.json() == {'recorded': 1}
    o = store.sql('select * from outcomes where request_id = $r', dict(r=one['request_id']))
    assert (len(o), o.outcome.iloc[0], o.source.iloc[0]) == (1, 1.0, 'rest')


@pytest.mark.timeout(300)   # the first test of a module also waits for its world and a server: minutes at a load average of 10
def test_client_errors_are_4xx_and_refusals_are_logged(shared, trained):
    srv, store, _ = shared
    c, recs = srv.client, trained.records
    statuses = []
    def post(path='/predict', rid=None, **kw):
        headers = {'content-type': 'application/json', **({'X-Request-ID': rid} if rid else {})}
        r = c.post(path, headers=headers, **kw)
        statuses.append((path, r.status_code, r.text[:200]))
        return r
    # malformed: 400, never reaches the scoring core
    r = post(content=b'{"income": 1', rid='err-malformed')
    assert r.status_code == 400 and r.json()['detail'].startswith('malformed JSON')
    assert post(content=b'{"region": "\xff"}', rid='err-utf8').status_code == 400
    assert post(json=recs[0], rid='bad id!').status_code == 400
    # records that break the contract: 422, each reason names the field; none of the request is scored
    r = post(json=[dict(recs[0], loan_term_months='sixty'), dict(recs[1], region='atlantis'), recs[2],
                   {k: v for k, v in recs[3].items() if k != 'income'}, 7], rid='err-contract')
    assert r.status_code == 422
    errs = {e['index']: e['reasons'] for e in r.json()['errors']}
    assert set(errs) == {0, 1, 3, 4}
    assert errs[0] == ['loan_term_months = sixty: expected an integer']
    assert len(errs[1]) == 1 and errs[1][0].startswith('region = atlantis: expected one of') and 'known categories' in errs[1][0]
    assert errs[3] == ['income = null: expected a value (not null)']
    assert 'must be an object' in errs[4][0]
    r = post(json=dict(recs[4], income='lots', applied_at='2999-01-01T00:00:00'), rid='err-one')
    assert r.status_code == 422 and {x.split(' = ')[0] for x in r.json()['errors'][0]['reasons']} == {'income', 'applied_at'}
    for body in (42, 'x', None, {'records': 5}):
        assert post(content=json.dumps(body).encode()).status_code == 422
    assert post(json=[]).json()['detail'] == 'no records to score'
    # too much: 413 for too many records and for a body over the limit, announced or streamed (chunked)
    r = post(json=[recs[0]] * 1001, rid='err-many')
    assert r.status_code == 413 and 'max_records' in r.json()['detail']
    big = b'[' + b' ' * (1024 * 1024) + b']'
    assert post(content=big, rid='err-big').status_code == 413
    assert post(content=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]), rid='err-big-chunked').status_code == 413
    # outcomes a client gets wrong
    assert post('/outcomes', json=[1]).status_code == 422
    assert 'needs a request_id or an entity_key' in post('/outcomes', json={'outcome': 1}).json()['detail']
    assert 'is not a number' in post('/outcomes', json={'outcome': 'yes', 'entity_key': '1'}).json()['detail']
    assert 'is not a time' in post('/outcomes', json={'outcome': 1, 'entity_key': '1', 'observed_at': 'soon'}).json()['detail']
    # wrong method, wrong path
    assert c.get('/predict').status_code == 405 and c.get('/nope').status_code == 404
    assert all(400 <= s < 500 for _, s, _ in statuses), statuses
    assert c.get('/health').status_code == 200
    # the contract refusals are in the audit log as 'invalid' (every record of the request, with its reasons); the rest never reached it
    inv = rows_of(store, 'err-contract')
    assert list(inv.request_id) == [f'err-contract-{i}' for i in range(5)] and set(inv.route) == {'invalid'}
    assert inv.score.isna().all() and inv.decision.isna().all()
    assert [json.loads(x) for x in inv.reasons] == [errs.get(i, []) for i in range(5)]
    assert list(rows_of(store, 'err-one').route) == ['invalid']
    assert not len(audit_of(store, ['err-malformed', 'err-utf8', 'err-many', 'err-big', 'err-big-chunked']))


@pytest.mark.timeout(60)
def test_deeply_nested_json_is_a_client_error(shared):
    srv, _, _ = shared
    with httpx.Client(base_url=srv.url, timeout=30, headers=srv.headers) as c:   # its own connection: a 500 may close it
        r = c.post('/predict', content=b'[' * 50_000 + b']' * 50_000, headers={'content-type': 'application/json'})
    assert srv.client.get('/health').status_code == 200     # the service survives it either way
    assert r.status_code == 400, (r.status_code, r.text[:200])


@pytest.mark.timeout(300)   # the first test of a module also waits for its world and a server: minutes at a load average of 10
def test_load_every_answer_audited(shared, trained, capsys):
    srv, store, settings = shared
    recs, stop, lock = trained.records[:500], threading.Event(), threading.Lock()
    one = []   # first, one client alone
    for i in range(30):
        t0 = time.perf_counter()
        assert srv.client.post('/predict', json=recs[i], headers={'X-Request-ID': f'alone-{i}'}).status_code == 200
        one.append((time.perf_counter() - t0) * 1000)
    acked, statuses, latencies, failures = [], [], [], []
    def client(n):
        with httpx.Client(base_url=srv.url, timeout=30, headers=srv.headers) as c:
            i = 0
            while not stop.is_set():
                rid = f'load-{n}-{i}'
                t0 = time.perf_counter()
                try: r = c.post('/predict', json=recs[(n * 97 + i) % len(recs)], headers={'X-Request-ID': rid})
                except httpx.HTTPError as e:
                    with lock: failures.append(repr(e))
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    statuses.append(r.status_code); latencies.append(dt)
                    if r.status_code == 200 and r.json()['request_id'] == rid: acked.append(rid)
                i += 1
    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    t0 = time.perf_counter()
    for t in threads: t.start()
    time.sleep(5)
    stop.set()
    for t in threads: t.join(60)
    took = time.perf_counter() - t0
    assert not failures and statuses and set(statuses) == {200}
    assert len(acked) == len(statuses)
    alone = [f'alone-{i}' for i in range(30)]
    logged = audit_of(store, acked + alone)
    assert set(logged.request_id) == set(acked) | set(alone) and set(logged.route) == {'champion'}
    assert cli(settings, 'audit', 'verify').stdout.startswith('audit log verified:')
    ms = np.array(latencies) * 1000
    report(capsys, f'one client alone: latency p50 {np.percentile(one, 50):.1f} ms, p95 {np.percentile(one, 95):.1f} ms over 30 requests; '
                   f'6 clients for {took:.1f} s: {len(statuses)} requests, {len(statuses) / took:.0f} requests/s, '
                   f'latency p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, '
                   f'max {ms.max():.0f} ms; no 5xx, all {len(acked)} answers in the audit log')


# ---------------------------------------------------------------------------------------------------- traffic policy

@pytest.mark.timeout(180)
def test_canary_and_shadow_follow_the_settings(own_store, settings_file, trained):
    from wildproof.scoring import canary_bucket
    recs = trained.records[:400]
    with Server(settings_file, WILDPROOF_SERVING_CANARY_SHARE='0.3', WILDPROOF_SERVING_SHADOW='true') as srv:
        v = srv.version()['traffic']
        assert (v['canary_share'], v['shadow']) == (0.3, True)
        first = srv.client.post('/predict', json=recs).json()
        again = srv.client.post('/predict', json=recs).json()
        singles = [srv.client.post('/predict', json=r).json()['predictions'][0] for r in recs[:10]]
    routes = [p['route'] for p in first['predictions']]
    assert [p['route'] for p in again['predictions']] == routes          # the same application, the same route
    assert [p['route'] for p in singles] == routes[:10]                # alone or in a batch
    keys = [str(r[world.key]) for r in recs]
    assert routes == ['canary' if b else 'champion' for b in canary_bucket(keys) < 0.3]
    share = routes.count('canary') / len(routes)
    assert 0.2 < share < 0.4, share
    # the canary answers with v2, the rest with v1: each the model's own score
    canary = np.array([r == 'canary' for r in routes])
    for p, ch in zip(first['predictions'], canary): assert p['version'] == ('2' if ch else '1')
    scores = np.array([p['score'] for p in first['predictions']])
    np.testing.assert_allclose(scores[canary], trained.expected('2', [r for r, c in zip(recs, canary) if c]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(scores[~canary], trained.expected('1', [r for r, c in zip(recs, canary) if not c]), rtol=0, atol=1e-9)
    # shadow: v2 scored every champion answer too; logged, never returned
    assert 'shadow' not in {p['route'] for p in first['predictions'] + again['predictions'] + singles}
    log = rows_of(own_store, first['request_id'])
    assert log.route.value_counts().to_dict() == {'champion': int((~canary).sum()), 'shadow': int((~canary).sum()), 'canary': int(canary.sum())}
    sh = log[log.route == 'shadow'].set_index('request_id')
    champ = log[log.route == 'champion'].set_index('request_id')
    assert sorted(sh.index) == sorted(champ.index) and set(sh.version) == {'2'} and not sh.review.any()
    by_id = {p['request_id']: r for p, r in zip(first['predictions'], recs)}
    np.testing.assert_allclose(sh.score.to_numpy(), trained.expected('2', [by_id[i] for i in sh.index]), rtol=0, atol=1e-9)
    assert (sh.decision == np.where(sh.score >= 0.25, 'decline', 'approve')).all()
    assert cli(settings_file, 'audit', 'verify').returncode == 0


@pytest.mark.timeout(180)
def test_unsure_band_from_the_environment(own_store, settings_file, trained):
    recs = trained.records[:400]
    with Server(settings_file, WILDPROOF_SERVING_UNSURE_BAND='0.2, 0.3') as srv:
        assert srv.version()['traffic']['unsure_band'] == [0.2, 0.3]
        res = srv.client.post('/predict', json=recs).json()
    expected = trained.expected('1', recs)
    unsure = (expected >= 0.2) & (expected <= 0.3)
    assert 0 < unsure.sum() < len(recs)
    for p, e, u in zip(res['predictions'], expected, unsure):
        assert abs(p['score'] - e) < 1e-9           # the score is still given, for the person who reviews it
        if u:
            assert (p['route'], p['decision'], p['review']) == ('fallback', 'review', True)
            assert p['reasons'] == [f'score {e:.3f} in the unsure band [0.2, 0.3]']
        else:
            assert (p['route'], p['decision'], p['review']) == ('champion', 'decline' if e >= 0.25 else 'approve', False)
    log = rows_of(own_store, res['request_id'])
    assert (log.route == 'fallback').sum() == unsure.sum() and log[log.route == 'fallback'].review.all()


# ---------------------------------------------------------------------------------------------------- fallback

@pytest.mark.timeout(240)
def test_fallback_when_the_champion_cannot_be_loaded(own_store, settings_file, trained):
    from wildproof.registry import _client, _move
    broken, dirs = sacrificial_version(own_store)
    _move(own_store, MODEL, 'production', broken, 'promote', 'test')
    for d in dirs: shutil.rmtree(d)                # its artifact files are gone
    recs = trained.records
    with Server(settings_file, WILDPROOF_SERVING_FALLBACK_DECISION='decline', WILDPROOF_SERVING_RELOAD_SECONDS='0.5') as srv:
        assert 'UNAVAILABLE' in srv.output
        h = srv.client.get('/health')
        assert h.status_code == 503
        assert (h.json()['status'], h.json()['champion']) == ('degraded', broken) and 'cannot be loaded' in h.json()['reason']
        champ = srv.version()['routes']['champion']
        assert (champ['version'], champ['available']) == (broken, False) and f'{MODEL} v{broken} cannot be loaded' in champ['error']
        one = srv.client.post('/predict', json=recs[0]).json()
        batch = srv.client.post('/predict', json=recs[1:6]).json()
        for p in one['predictions'] + batch['predictions']:
            assert (p['route'], p['decision'], p['review'], p['score'], p['version']) == ('fallback', 'decline', True, None, broken)
            assert len(p['reasons']) == 1 and p['reasons'][0].startswith('model unavailable:') and 'cannot be loaded' in p['reasons'][0]
        # the contract still checks what comes in (the challenger's): a bad record is refused, not waved through
        assert srv.client.post('/predict', json=dict(recs[6], region='atlantis')).status_code == 422
        # no model at all: the challenger leaves staging too
        _client(own_store).delete_registered_model_alias(MODEL, 'staging')
        wait_for(lambda: srv.version()['routes']['challenger']['version'] is None)
        none = srv.client.post('/predict', json=recs[7]).json()['predictions'][0]
        assert (none['route'], none['decision'], none['review'], none['score']) == ('fallback', 'decline', True, None)
        assert none['reasons'][0].startswith('no model is available to score with')
        # healing: production points at a loadable version again, no restart
        _move(own_store, MODEL, 'production', '1', 'rollback', 'test')
        wait_for(lambda: srv.client.get('/health').status_code == 200)
        ok = srv.client.post('/predict', json=recs[8]).json()['predictions'][0]
        assert (ok['route'], ok['version'], ok['review']) == ('champion', '1', False)
        assert abs(ok['score'] - trained.expected('1', recs[8:9])[0]) < 1e-9
    log = audit_of(own_store, [p['request_id'] for p in one['predictions'] + batch['predictions']] + [none['request_id']])
    assert len(log) == 7 and set(log.route) == {'fallback'} and set(log.decision) == {'decline'} and log.review.all()
    assert log.reasons.str.contains('cannot be loaded|no model is available').all()
    assert cli(settings_file, 'audit', 'verify').returncode == 0


@pytest.mark.timeout(240)
def test_a_corrupt_model_file_is_answered_with_the_fallback(own_store, settings_file, trained):
    from wildproof.registry import _move
    broken, (model_dir, _) = sacrificial_version(own_store)
    _move(own_store, MODEL, 'production', broken, 'promote', 'test')
    (model_dir / 'model.skops').write_bytes(b'not a model')
    with Server(settings_file) as srv:
        assert srv.client.get('/health').status_code == 503
        p = srv.client.post('/predict', json=trained.records[0]).json()['predictions'][0]
        assert (p['route'], p['review']) == ('fallback', True)


# ---------------------------------------------------------------------------------------------------- hot reload

@pytest.mark.timeout(240)
def test_promotion_and_rollback_reach_the_running_service(own_store, settings_file, trained, capsys):
    from wildproof.registry import _move
    recs = trained.records
    def delay(v):
        "Seconds from the alias move (its record in the aliases table) to the service's loading of the new champion (/version)."
        moved = own_store.sql("select max(created_at) as t from aliases where alias = 'production'").t.iloc[0]
        loaded = pd.Timestamp(v['routes']['champion']['loaded_at'])
        return (loaded - moved).total_seconds()
    with Server(settings_file, WILDPROOF_SERVING_RELOAD_SECONDS='0.5') as srv:
        assert srv.version()['routes']['champion']['version'] == '1'
        assert srv.client.post('/predict', json=recs[0]).json()['predictions'][0]['version'] == '1'
        _move(own_store, MODEL, 'production', '2', 'promote', 'test')
        v, polled = wait_for(lambda: (v := srv.version())['routes']['champion']['version'] == '2' and v)
        promoted = delay(v)
        p = srv.client.post('/predict', json=recs[1]).json()['predictions'][0]
        assert (p['route'], p['version']) == ('champion', '2') and abs(p['score'] - trained.expected('2', recs[1:2])[0]) < 1e-9
        from tests.people import PASSWORD, as_, shared_team   # an operator rolls back (`[access] rollback_roles`)
        out = run('rollback', MODEL, *as_('ops'), cwd=settings_file.parent, input=f'{PASSWORD}\n',
                  env={**ENV, 'WILDPROOF_SETTINGS': str(settings_file), 'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(shared_team())}).stdout
        assert 'v1 is production again' in out
        v, _ = wait_for(lambda: (v := srv.version())['routes']['champion']['version'] == '1' and v)
        rolled = delay(v)
        p = srv.client.post('/predict', json=recs[2]).json()['predictions'][0]
        assert (p['route'], p['version']) == ('champion', '1') and abs(p['score'] - trained.expected('1', recs[2:3])[0]) < 1e-9
        assert srv.client.get('/health').status_code == 200
        assert srv.version()['changes'] == 4   # champion and challenger loaded at start, then the promotion and the rollback
    report(capsys, f'hot reload, reload_seconds 0.5: the service loaded the promoted version {promoted:.2f} s after the alias moved '
                   f'(seen by a client polling /version after {polled:.2f} s); the rollback by `wildproof rollback` {rolled:.2f} s after')


# ---------------------------------------------------------------------------------------------------- durability

@pytest.mark.timeout(240)
@pytest.mark.parametrize('workers', [1, 2])
def test_kill_9_loses_no_acknowledged_answer(own_store, settings_file, trained, capsys, workers):
    "8 clients send single records as fast as they are answered (through the audit journal, in one or two worker processes); kill -9 of the server loses none that was answered."
    recs, stop, lock = trained.records, threading.Event(), threading.Lock()
    acked, errors = [], []
    srv = Server(settings_file, workers=workers)
    def client(n):
        with httpx.Client(base_url=srv.url, timeout=30, headers=srv.headers) as c:
            i = 0
            while not stop.is_set():
                rid = f'k9-{n}-{i}'
                i += 1
                try: r = c.post('/predict', json=recs[(n * 131 + i) % len(recs)], headers={'X-Request-ID': rid})
                except httpx.HTTPError as e:
                    with lock: errors.append(type(e).__name__)
                    time.sleep(0.01)
                    continue
                if r.status_code == 200 and r.json()['request_id'] == rid:
                    with lock: acked.append(rid)
                else:
                    with lock: errors.append(r.status_code)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    try:
        for t in threads: t.start()
        wait_for(lambda: len(acked) >= 200, timeout=60)
        time.sleep(3)
        srv.kill9()
        assert srv.proc.returncode == -signal.SIGKILL
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads: t.join(60)
        srv.stop()
    assert len(acked) >= 200 and not [e for e in errors if isinstance(e, int)], errors[:10]
    wait_for(lambda: srv.proc.poll() is not None and not _serving(srv.port), timeout=10)   # its workers died with it
    logged = set(own_store.sql('select request_id from predictions').request_id)
    missing = set(acked) - logged
    assert not missing, f'{len(missing)} acknowledged answers are not in the audit log: {sorted(missing)[:5]}'
    r = cli(settings_file, 'audit', 'verify')
    assert 'chain intact' in r.stdout
    before = own_store.sql('select max(seq) as s, count(*) as n from predictions').iloc[0]
    # the service starts again on the same store and carries on the chain
    with Server(settings_file) as again:
        assert again.client.get('/health').status_code == 200
        after = [again.client.post('/predict', json=recs[i], headers={'X-Request-ID': f'after-{i}'}) for i in range(20)]
        assert {a.status_code for a in after} == {200}
        # SIGTERM: uvicorn shuts down (lifespan: the core closes, the audit writer commits what is queued), then re-raises the signal
        assert again.stop() in (0, -signal.SIGTERM) and 'Traceback' not in again.output
    new = audit_of(own_store, [f'after-{i}' for i in range(20)])
    assert len(new) == 20 and new.seq.min() > before.s
    r = cli(settings_file, 'audit', 'verify')
    assert r.returncode == 0 and 'chain intact' in r.stdout
    report(capsys, f'kill -9 of {workers} worker process(es) after {len(acked)} acknowledged answers ({len(logged) - len(acked)} more were committed but not acknowledged); '
                   f'none lost, chain intact: {r.stdout.strip()}')


def _serving(port: int) -> bool:
    "Whether anything still answers on `port`."
    try: return httpx.get(f'http://127.0.0.1:{port}/health', timeout=1).status_code > 0
    except httpx.TransportError: return False


# ---------------------------------------------------------------------------------------------------- batch

@pytest.mark.timeout(240)
def test_batch_scoring_outcomes_and_replay_from_the_shell(own_store, settings_file, trained, tmp_path):
    from sklearn.metrics import roc_auc_score
    trained.apps.to_parquet(tmp_path / 'apps.parquet', index=False)
    assert 'ingested as loan_applications@' in cli(settings_file, 'ingest', 'loan_applications', tmp_path / 'apps.parquet').stdout
    out = cli(settings_file, 'score', 'loan_applications@latest', '--model', MODEL).stdout.strip()
    m = re.search(r'scored ([\d,]+) of 3,000 rows of loan_applications@\w+ with credit_risk \(champion ([\d,]+); ([\d,]+) quarantined\).* -> (\S+)$', out)
    assert m, out
    n, champion, quarantined, scores_file = int(m[1].replace(',', '')), int(m[2].replace(',', '')), int(m[3].replace(',', '')), Path(m[4])
    assert n == champion and n + quarantined == 3000
    # the world's later months hold broken rows (incomes in cents, a new employment type): quarantined with their reasons, not scored
    q = own_store.sql('select count(distinct row) as n, list(distinct "column") as cols from quarantine where starts_with(snapshot_id, $d)',
                      dict(d='loan_applications@')).iloc[0]
    assert q.n == quarantined > 0 and {'income', 'employment_type'} <= set(q.cols)
    s = pd.read_parquet(scores_file)
    assert len(s) == n and set(s.route) == {'champion'} and set(s.version) == {'1'}
    by_key = dict(zip(trained.apps[world.key].astype(str), trained.expected('1', trained.apps.to_dict('records'))))
    np.testing.assert_allclose(s.score.to_numpy(), [by_key[k] for k in s.entity_key], rtol=0, atol=1e-9)
    log = own_store.sql("select route, source, count(*) as n from predictions group by all")
    assert log.to_dict('records') == [dict(route='champion', source='batch', n=n)]
    # outcomes arrive later, as a file; then v2 replays the logged traffic
    truth = trained.truth.rename(columns={world.key: 'entity_key', world.target: 'outcome', world.outcome_time_column: 'observed_at'})
    truth.to_csv(tmp_path / 'outcomes.csv', index=False)
    assert 'recorded 3,000 outcomes' in cli(settings_file, 'outcomes', tmp_path / 'outcomes.csv').stdout
    out = cli(settings_file, 'replay', '2', '--model', MODEL).stdout
    m = re.search(r'replayed ([\d,]+) served requests of credit_risk \(answered by v1\) through v2: decisions disagree on ([\d.]+)%', out)
    assert m and int(m[1].replace(',', '')) == n, out
    assert 0 < float(m[2]) < 50
    m = re.search(r'with outcomes \(([\d,]+)\): ROC AUC champion ([\d.]+), challenger ([\d.]+), difference ([-+][\d.]+) \[([-+][\d.]+), ([-+][\d.]+)\]', out)
    assert m, out
    assert int(m[1].replace(',', '')) == n
    y = s.entity_key.map(dict(zip(truth.entity_key.astype(str), truth.outcome)))
    assert abs(float(m[2]) - roc_auc_score(y, s.score)) < 1e-4     # the champion's AUC, computed independently
    assert abs(float(m[3]) - float(m[2]) - float(m[4])) < 2e-4 and float(m[5]) <= float(m[4]) <= float(m[6])
    assert cli(settings_file, 'audit', 'verify').returncode == 0
