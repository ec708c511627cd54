#!/usr/bin/env python
"""Benchmark: online serving under load (issue 20): `wildproof serve`, `mlflow models serve` and a bare FastAPI app on the same model, loaded by wrk.

    .venv/bin/python bench/online.py                          # fresh and used store, 2 s warm-up + 10 s per measurement (about 3.5 minutes;
                                                              # the first run also builds the used store with `wildproof demo`, about 4 minutes more)
    .venv/bin/python bench/online.py --used /tmp/used         # the used store: a copy of this one (never written to)
    .venv/bin/python bench/online.py --seconds 1 --warmup 0.5 --fresh-only --skip-mlflow   # a smoke run (about 40 s)
    PYTHONPATH=/tmp/base/src .venv/bin/python bench/online.py # measure another checkout's wildproof (the servers inherit PYTHONPATH)

What it does, in a temporary folder deleted at the end (`--keep` keeps it):

1. Stores. **fresh**: a new store holding the demo's first model and nothing served: the demo world (`[demo] rows` and
   `seed`, or `--fresh-rows`), its reference months ingested, the contract inferred (without the target and the outcome
   time) and registered, the credit spec registered, the model trained as `wildproof demo` trains its first version, and
   the `production` alias pointed at it. **used**: a copy of a store after `wildproof demo` (about 157,000 audit records):
   `--used PATH`, or by default a store built once with `wildproof --store DIR demo` in `--cache` (default
   bench/out/online-cache, git-ignored) and copied for each run.
2. Records. A few hundred (`--records`) real records that pass the store's contract (`wildproof.contracts.check_records`):
   on the used store the inputs of requests its service answered (`inputs_json` of the audit log, source rest, route
   champion); on the fresh store the demo world's applications after the reference months, without target and outcome
   time. Their features are built beforehand with the served version's feature set and outcome history
   (`wildproof.scoring.load_version`, `wildproof.features.build_features`) for the two servers that take features.
3. Servers, one after the other, each on 127.0.0.1, a free port, `OMP_NUM_THREADS=1`, with its own defaults: wildproof's
   `[serving] workers`, mlflow's one uvicorn worker, the bare app's one process (`--serve-args "--workers 2"` and
   `--mlflow-args "--workers 2"` pass options to wildproof's and mlflow's):
   * **wildproof**: `wildproof serve --model MODEL` on the store (POST /predict, one raw record; the audit log on; wrk sends
     one client's bearer token, checked on every request, its rate limit lifted: `[serving] rate_limit_*`);
   * **mlflow**: `mlflow models serve -m models:/MODEL/VERSION --env-manager local` with the store's SQLite database as
     tracking and registry URI (POST /invocations, `{"dataframe_split": ...}` of one feature row; MLflow's pyfunc of a
     scikit-learn model answers with `predict`, the class, which costs the same `predict_proba` plus an argmax);
   * **bare**: a FastAPI app under uvicorn (this file, `--bare-app`), the same pipeline's `predict_proba` on one feature
     row (POST /predict, a JSON object of the features; the handler reads the body, `json.loads`, and runs
     `predict_proba(pd.DataFrame([record]))` in the thread pool like wildproof's handler runs its scoring; no contract,
     no audit).
   Before the load, 3 requests check that each server answers 2xx with the model's own answer for those records.
4. Load. wrk, 1 thread, `--connections` (default 1 and 8), keep-alive, single-record POSTs rotating through the records
   (a Lua script; its `done()` prints the percentiles and the error counts as JSON): `--warmup` seconds (not counted),
   then `--seconds` measured. Errors are socket errors (connect, read, write, timeout) and answers other than 2xx. Also,
   for each measurement, the server's CPU time per request (all processes of its session, from /proc: less disturbed by
   other load than the timings) and how many processes it runs (uvicorn workers, mlflow's CLI beside its server).
5. Verdicts, per store, PASS or FAIL (a goal measured with errors is FAIL): wildproof >= 1,000 requests/s at 8
   connections; its p99 <= 20 ms at 1 connection and <= 50 ms at 8; >= 3x mlflow's requests/s at 8 connections (1 connection
   printed); within 1.5x the bare app's p50 and p99 at 1 connection (8 connections printed). It never asserts a timing and
   exits 0 (2 when it could not measure: wrk missing, a server that does not start).
"""
import os
os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')

import argparse, json, math, platform, shlex, shutil, signal, socket, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import verdict   # noqa: E402

GOALS = dict(rps_8=1000.0, p99_1_ms=20.0, p99_8_ms=50.0, x_mlflow=3.0, x_bare=1.5)
SERVERS = ('wildproof', 'mlflow', 'bare')
WRK_LUA = r'''
-- single-record POSTs rotating through the bodies of a file (one JSON a line): wrk ... -s this.lua URL -- FILE PATH [AUTHORIZATION]
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  reqs, counter, non2xx, responses, first_bad = {}, 0, 0, 0, ""
  local hdr = {["Content-Type"] = "application/json"}
  if args[3] then hdr["Authorization"] = args[3] end
  for line in io.lines(args[1]) do
    if #line > 0 then reqs[#reqs + 1] = wrk.format("POST", args[2], hdr, line) end
  end
end
function request()
  counter = counter + 1
  return reqs[(counter - 1) % #reqs + 1]
end
function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == "" then first_bad = status .. " " .. string.sub(body or "", 1, 300) end
  end
end
function done(summary, latency, requests)
  local bad, resp, sample = 0, 0, ""
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx"); resp = resp + t:get("responses")
    if sample == "" then sample = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"non2xx": %d, "responses": %d, "p50_us": %.1f, "p95_us": %.1f, "p99_us": %.1f, "mean_us": %.1f, "max_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, bad, resp,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
  io.write("WRK_FIRST_BAD " .. sample .. "\n")
end
'''


# --------------------------------------------------------------------------------------------------------------
# the bare FastAPI app (run as `python bench/online.py --bare-app PICKLE --port N`): no wildproof import

def bare_app(pickled: Path, port: int) -> None:
    import pickle
    import pandas as pd
    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.concurrency import run_in_threadpool
    with open(pickled, 'rb') as f: pipe, columns, positive = pickle.load(f)

    def score(rec: dict) -> float:   # pandas types the columns from the JSON values: those of the feature frame (checked before the load)
        return float(pipe.predict_proba(pd.DataFrame([rec], columns=columns))[0, positive])

    app = FastAPI(title='bare: the pipeline alone')

    @app.post('/predict')
    async def predict(request: Request):
        rec = json.loads(await request.body())
        return {'score': await run_in_threadpool(score, rec)}

    @app.get('/health')
    async def health(): return {'status': 'ok'}

    uvicorn.run(app, host='127.0.0.1', port=port, log_level='warning', access_log=False)


# --------------------------------------------------------------------------------------------------------------
# what is measured

def source_commit(path: Path) -> str:
    "The commit of the git checkout holding `path` (the wildproof imported), and whether its src/ differs from it."
    try:
        run = lambda *a: subprocess.run(['git', '-C', str(path), *a], capture_output=True, text=True, timeout=10).stdout.strip()
        head, top = run('rev-parse', '--short', 'HEAD'), run('rev-parse', '--show-toplevel')
        if not head: return 'unknown (not a git checkout)'
        return head + (' with uncommitted changes in src/' if run('status', '--porcelain', '--', str(Path(top) / 'src')) else '') + f' ({top})'
    except (OSError, subprocess.SubprocessError): return 'unknown'


def wrk_version(wrk: str) -> str:
    try: out = subprocess.run([wrk, '-v'], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError): return 'unknown'
    return ((out.stdout or out.stderr).splitlines() or ['unknown'])[0].split(' Copyright')[0].strip()


def load1() -> float: return os.getloadavg()[0]


TICK = os.sysconf('SC_CLK_TCK')


def session_cpu(sid: int) -> tuple[int, float]:
    "The live processes of session `sid` (a server started in its own session: its workers and children too) and their CPU seconds so far."
    n, ticks = 0, 0
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: stat = (d / 'stat').read_text()
        except OSError: continue
        f = stat[stat.rindex(')') + 2:].split()   # after the command's name: state, ppid, pgrp, session, ..., utime (12th), stime (13th)
        if int(f[3]) == sid and f[0] != 'Z': n += 1; ticks += int(f[11]) + int(f[12])
    return n, ticks / TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def server_env(**extra) -> dict:
    "The environment of every server: none of the caller's WILDPROOF_* settings, one numeric thread, no MLflow telemetry."
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'   # mlflow's CLI runs `uvicorn` from PATH
    env.update(OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1', MKL_NUM_THREADS='1', MLFLOW_DISABLE_TELEMETRY='true', PYTHONUNBUFFERED='1', **extra)
    return env


class Server:
    "One server in its own process group on 127.0.0.1: started, waited for (GET `health` answers 200), stopped."
    def __init__(self, name: str, cmd: list, env: dict, port: int, health: str, predict: str, log: Path, cwd: Path, timeout: float = 180,
                 headers: dict | None = None):
        import httpx
        self.name, self.url, self.predict, self.log, self.headers = name, f'http://127.0.0.1:{port}', predict, log, headers or {}
        out = open(log, 'wb')
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()   # the child has its own copy
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f'{name} exited with {self.proc.returncode} before it answered:\n{self.output()[-3000:]}')
            try:
                if httpx.get(self.url + health, timeout=2).status_code == 200: break
            except httpx.HTTPError: pass
            if time.perf_counter() - t0 > timeout:
                self.stop(); raise RuntimeError(f'{name} did not answer {health} within {timeout:.0f} s:\n{self.output()[-3000:]}')
            time.sleep(0.1)
        self.started_s = time.perf_counter() - t0
        print(f'   {name}: `{" ".join(Path(str(c)).name if i == 0 else str(c) for i, c in enumerate(cmd))}` (pid {self.proc.pid}) answered after {self.started_s:.1f} s', flush=True)

    def output(self) -> str: return self.log.read_text(errors='replace')

    def stop(self) -> None:
        "SIGTERM to the server's process group (mlflow's CLI starts uvicorn as a child), SIGKILL after 30 s."
        if self.proc.poll() is None:
            try: os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError: pass
            try: self.proc.wait(30)
            except subprocess.TimeoutExpired:
                try: os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError: pass
                self.proc.wait()
        else:
            try: os.killpg(self.proc.pid, signal.SIGKILL)   # a child may outlive its parent
            except (ProcessLookupError, PermissionError): pass


def wrk_seconds(s: float) -> int: return max(1, math.ceil(s))   # wrk takes whole seconds


def wrk_run(wrk: str, url: str, lua: Path, bodies: Path, path: str, connections: int, seconds: float, timeout_s: float, headers: dict | None = None) -> dict:
    "One wrk run; its figures (latencies in ms) from the Lua script's JSON line."
    cmd = [wrk, '-t1', f'-c{connections}', f'-d{wrk_seconds(seconds)}s', f'--timeout', f'{timeout_s:g}s', '-s', str(lua), url, '--', str(bodies), path,
           *([headers['Authorization']] if headers and 'Authorization' in headers else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 60)
    line = next((l for l in out.stdout.splitlines() if l.startswith('WRK_JSON ')), None)
    if line is None: raise RuntimeError(f'wrk printed no figures (exit {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}')
    r = json.loads(line.removeprefix('WRK_JSON '))
    bad = next((l.removeprefix('WRK_FIRST_BAD').strip() for l in out.stdout.splitlines() if l.startswith('WRK_FIRST_BAD')), '')
    secs = r['duration_us'] / 1e6
    socket_errors = r['connect'] + r['read'] + r['write'] + r['timeout']
    return dict(connections=connections, seconds=secs, requests=r['requests'], rps=r['requests'] / secs if secs else 0.0,
                p50_ms=r['p50_us'] / 1000, p95_ms=r['p95_us'] / 1000, p99_ms=r['p99_us'] / 1000, mean_ms=r['mean_us'] / 1000, max_ms=r['max_us'] / 1000,
                non2xx=r['non2xx'], socket_errors=socket_errors, errors=r['non2xx'] + socket_errors,
                socket=dict(connect=r['connect'], read=r['read'], write=r['write'], timeout=r['timeout']), first_bad=bad)


# --------------------------------------------------------------------------------------------------------------
# stores and records

def build_fresh(root: Path, settings, rows: int, seed: int, n: int) -> list[dict]:
    "A new store with the demo's first model behind `production`, nothing served; returns later applications as a client sends them."
    from wildproof.contracts import infer_contract
    from wildproof.datasets import ingest
    from wildproof.examples.credit import world
    from wildproof.examples.credit.features import credit_spec
    from wildproof.registry import _move
    from wildproof.store import Store
    from wildproof.training import train
    t0 = time.perf_counter()
    store = Store(root)
    df = world.generate_world(rows=rows, seed=seed)
    reference, rest = world.split_reference(df, settings.demo.reference_months)
    ref = ingest(store, 'loans_reference', reference, note='bench/online.py: the demo world, its reference months')
    contract = infer_contract(store, ref, name='loan_applications', key=world.key, time_column=world.time_column,
                              exclude=[world.target, world.outcome_time_column], settings=settings).register(store)
    spec = credit_spec(store, contract.name).register(store)
    t = train(store, ref, spec, settings=settings)
    _move(store, spec.model, 'production', t.version, 'promote', 'bench')
    apps = rest.head(4 * n).drop(columns=[world.target, world.outcome_time_column])
    print(f'   fresh store: {rows:,}-row demo world (seed {seed}), {spec.model} v{t.version} trained on {ref.rows:,} reference rows '
          f'and put in production, nothing served ({time.perf_counter() - t0:.0f} s)', flush=True)
    return json.loads(apps.to_json(orient='records', date_format='iso'))


def used_template(args) -> Path:
    "The store to copy as the used one: --used, or the cached demo store (built with `wildproof --store DIR demo` when missing)."
    if args.used is not None:
        if not (args.used / 'store.json').exists(): sys.exit(f'--used {args.used}: not a wildproof store (no store.json)')
        return args.used
    cache = args.cache / 'used'
    done = args.cache / 'used.built.json'
    if done.exists() and (cache / 'store.json').exists(): return cache
    shutil.rmtree(cache, ignore_errors=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    import wildproof
    cmd = [sys.executable, '-m', 'wildproof.cli', '--store', str(cache), 'demo']
    print(f'   building the used store once (`wildproof --store {cache} demo`, a few minutes; reused by later runs; log in {cache}.log)', flush=True)
    t0 = time.perf_counter()
    conf = args.cache / 'settings.ini'
    conf.write_text(f'[store]\nroot = {cache}\n')   # the defaults otherwise ([demo] rows and seed), whatever settings.ini is around
    with open(f'{cache}.log', 'wb') as log:
        rc = subprocess.run(cmd, env=server_env(WILDPROOF_SETTINGS=str(conf)), cwd=args.cache, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc: sys.exit(f'`wildproof demo` failed (exit {rc}); see {cache}.log')
    done.write_text(json.dumps(dict(built=datetime.now(timezone.utc).isoformat(timespec='seconds'), seconds=round(time.perf_counter() - t0),
                                    wildproof=wildproof.__file__, commit=source_commit(Path(wildproof.__file__).parent))))
    print(f'   built in {time.perf_counter() - t0:.0f} s', flush=True)
    return cache


def served_records(store, model: str, n: int) -> list[dict]:
    "Inputs of requests the store's service answered (its audit log: source rest, route champion), newest first."
    con = store.connect(['predictions'])
    try:
        rows = con.execute("select inputs_json from predictions where source = 'rest' and route = 'champion' and model = $m "
                           "and inputs_json is not null order by seq desc limit $k", dict(m=model, k=4 * n)).fetchall()
    finally: con.close()
    return [json.loads(r[0]) for r in rows]


def audit_count(store) -> int | None:
    "Records in the audit log (for information), or None when it cannot be read that way."
    try:
        con = store.connect(['predictions'])
        try: return int(con.execute('select count(*) from predictions').fetchone()[0])
        finally: con.close()
    except Exception: return None


def prepare(name: str, root: Path, work: Path, records: list[dict], model: str, n: int) -> dict:
    "The served version, the records that pass the contract, their features built beforehand, and the request bodies of each server."
    import numpy as np
    import pickle
    from wildproof.contracts import check_records
    from wildproof.features import build_features
    from wildproof.registry import alias_version
    from wildproof.scoring import load_version
    from wildproof.store import Store
    from wildproof.training import positive_column
    store = Store(root)   # a copied store points its MLflow database at its own artifacts
    version = alias_version(store, model, 'production')
    route = load_version(store, model, version)
    if not route.ok: raise RuntimeError(f'{name} store: {model} v{version} cannot be loaded: {route.error}')
    typed, why = check_records(route.contract, records)
    keep = [i for i, w in enumerate(why) if not w][:n]
    if len(keep) < min(n, 20): raise RuntimeError(f'{name} store: only {len(keep)} of {len(records)} records pass the contract')
    recs = [records[i] for i in keep]
    typed = typed.iloc[keep].reset_index(drop=True)
    X = build_features(typed, route.features, route.history)
    pos = positive_column(route.pipe, route.spec.positive)
    expected = np.asarray(route.pipe.predict_proba(X)[:, pos], float)
    labels = route.pipe.predict(X.head(3)).tolist()
    split = json.loads(X.to_json(orient='split', index=False, date_format='iso'))
    cols = split['columns']
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    bodies = dict(wildproof=[json.dumps(r) for r in recs],
                  mlflow=[json.dumps(dict(dataframe_split=dict(columns=cols, data=[row]))) for row in split['data']],
                  bare=[json.dumps(dict(zip(cols, row))) for row in split['data']])
    files = {}
    for k, lines in bodies.items():
        files[k] = d / f'{k}.bodies'
        files[k].write_text('\n'.join(lines) + '\n')
    with open(d / 'pipe.pkl', 'wb') as f: pickle.dump((route.pipe, cols, pos), f)
    return dict(name=name, root=root, model=model, version=str(version), records=len(recs), files=files, pickle=d / 'pipe.pkl',
                expected=expected[:3].tolist(), labels=labels, features=len(cols), audit_before=audit_count(store),
                tracking_uri=f'sqlite:///{store.mlflow_db}')


# --------------------------------------------------------------------------------------------------------------
# one store: each server in turn

def start(kind: str, prep: dict, work: Path) -> Server:
    port = free_port()
    log = work / prep['name'] / f'{kind}.log'
    if kind == 'wildproof':
        from wildproof import principals
        settings = work / prep['name'] / 'settings.ini'
        people = work / prep['name'] / 'principals.json'   # one client, as a deployment has: wrk sends its bearer token
        people.unlink(missing_ok=True)
        token = principals.add_client(people, 'bench', ['predict'])
        sections = {'access': {'principals_file': str(people)},   # wrk is one client: its rate limit lifted (the check itself still runs)
                    'serving': {'rate_limit_per_second': '1000000000', 'rate_limit_burst': '1000000000'}}
        for sec, key, val in prep['settings']: sections.setdefault(sec, {})[key] = val   # --setting, grouped by section
        extra = ''.join(f'[{sec}]\n' + ''.join(f'{k} = {v}\n' for k, v in kv.items()) for sec, kv in sections.items())
        settings.write_text(f'[store]\nroot = {prep["root"]}\n{extra}')   # the defaults otherwise, whatever settings.ini or WILDPROOF_* is around
        cmd = [sys.executable, '-m', 'wildproof.cli', 'serve', '--model', prep['model'], '--host', '127.0.0.1', '--port', port, *prep['serve_args']]
        return Server(kind, cmd, server_env(WILDPROOF_SETTINGS=str(settings)), port, '/health', '/predict', log, settings.parent,
                      headers={'Authorization': f'Bearer {token}'})
    if kind == 'mlflow':
        exe = Path(sys.executable).parent / 'mlflow'
        cmd = [exe, 'models', 'serve', '-m', f'models:/{prep["model"]}/{prep["version"]}', '--env-manager', 'local', '-h', '127.0.0.1', '-p', port,
               *prep['mlflow_args']]
        env = server_env(MLFLOW_TRACKING_URI=prep['tracking_uri'], MLFLOW_REGISTRY_URI=prep['tracking_uri'])
        return Server(kind, cmd, env, port, '/ping', '/invocations', log, work / prep['name'])
    cmd = [sys.executable, Path(__file__).resolve(), '--bare-app', prep['pickle'], '--port', port]
    return Server(kind, cmd, server_env(), port, '/health', '/predict', log, work / prep['name'])


def check_answers(srv: Server, kind: str, prep: dict) -> dict:
    "The first 3 bodies POSTed once: every answer 2xx and the model's own (score to 1e-9; mlflow's class)."
    import httpx
    lines = prep['files'][kind].read_text().splitlines()[:3]
    got, ok = [], True
    with httpx.Client(base_url=srv.url, timeout=60, headers=srv.headers) as c:
        for i, body in enumerate(lines):
            r = c.post(srv.predict, content=body.encode(), headers={'content-type': 'application/json'})
            if r.status_code // 100 != 2:
                return dict(ok=False, detail=f'answer {r.status_code}: {r.text[:300]}')
            j = r.json()
            if kind == 'wildproof': v = j['predictions'][0]['score']; ok &= abs(v - prep['expected'][i]) <= 1e-9
            elif kind == 'bare': v = j['score']; ok &= abs(v - prep['expected'][i]) <= 1e-9
            else: v = (j.get('predictions') or [None])[0]; ok &= v == prep['labels'][i]
            got.append(v)
    return dict(ok=bool(ok), detail=f'answers {got}, the model in this process {prep["labels"] if kind == "mlflow" else [round(x, 12) for x in prep["expected"]]}')


def bench_store(args, prep: dict, work: Path, lua: Path) -> dict:
    out = {}
    print(f'\n{prep["name"]} store: {prep["model"]} v{prep["version"]} ({prep["features"]} features), {prep["records"]} records rotating'
          + (f', {prep["audit_before"]:,} audit records before' if prep['audit_before'] is not None else ''), flush=True)
    for kind in [k for k in SERVERS if not (k == 'mlflow' and args.skip_mlflow) and not (k == 'bare' and args.skip_bare)]:
        try: srv = start(kind, prep, work)
        except RuntimeError as e:
            print(f'   {kind}: COULD NOT START: {e}', file=sys.stderr, flush=True)
            out[kind] = dict(error=str(e)); continue
        try:
            chk = check_answers(srv, kind, prep)
            print(f'   {kind}: ' + ("the model's answers" if chk['ok'] else 'ANSWERS DIFFER') + f': {chk["detail"]}', flush=True)
            runs = {}
            for c in args.connections:
                warm = wrk_run(args.wrk, srv.url, lua, prep['files'][kind], srv.predict, c, args.warmup, args.timeout, srv.headers) if args.warmup > 0 else None
                before, (procs, cpu0) = load1(), session_cpu(srv.proc.pid)
                r = wrk_run(args.wrk, srv.url, lua, prep['files'][kind], srv.predict, c, args.seconds, args.timeout, srv.headers)
                cpu = session_cpu(srv.proc.pid)[1] - cpu0
                r.update(load_before=before, load_after=load1(), warmup_errors=warm['errors'] if warm else 0, warmup_requests=warm['requests'] if warm else 0,
                         processes=procs, server_cpu_s=cpu, cpu_ms_per_request=1000 * cpu / max(r['requests'], 1))
                runs[c] = r
                print(f'   {kind:9} {c} conn: {r["rps"]:8,.0f} requests/s  p50 {r["p50_ms"]:7.2f}  p95 {r["p95_ms"]:7.2f}  p99 {r["p99_ms"]:7.2f} ms  '
                      f'errors {r["errors"]} (non-2xx {r["non2xx"]}, socket {r["socket_errors"]}; warm-up {r["warmup_errors"]} of {r["warmup_requests"]})  '
                      f'server CPU {r["cpu_ms_per_request"]:.2f} ms/request ({r["processes"]} processes)  '
                      f'load {before:.2f} -> {r["load_after"]:.2f}' + (f'  first bad answer: {r["first_bad"]}' if r['first_bad'] else ''), flush=True)
            out[kind] = dict(started_s=srv.started_s, answers=chk, runs=runs)
        except Exception as e:
            print(f'   {kind}: FAILED: {type(e).__name__}: {e}\n{srv.output()[-2000:]}', file=sys.stderr, flush=True)
            out[kind] = dict(error=f'{type(e).__name__}: {e}')
        finally:
            srv.stop()
    if 'wildproof' in out and 'runs' in out['wildproof'] and prep['audit_before'] is not None:
        from wildproof.store import Store
        after = audit_count(Store(prep['root']))
        if after is not None:
            answered = sum(r['requests'] + r['warmup_requests'] for r in out['wildproof']['runs'].values()) + 3
            added = after - prep['audit_before']
            out['wildproof'].update(audit_added=added, answers_read=answered)
            print(f'   wildproof: {added:,} audit records added, {answered:,} answers read by wrk and the checks: '
                  + ('as many or more (requests still in flight when wrk stops are answered and logged, not read)' if added >= answered
                     else 'FEWER RECORDS THAN ANSWERS'), flush=True)
    return out


# --------------------------------------------------------------------------------------------------------------
# verdicts

def goals(res: dict, conns: list[int]) -> list[dict]:
    "Each goal of issue 20 on one store: what it compares, the figure, PASS or FAIL (FAIL too when a run it uses had errors or is missing)."
    run = lambda k, c: (res.get(k) or {}).get('runs', {}).get(c)
    clean = lambda *rs: all(r is not None and r['errors'] == 0 for r in rs)
    w1, w8, m1, m8, b1, b8 = run('wildproof', 1), run('wildproof', 8), run('mlflow', 1), run('mlflow', 8), run('bare', 1), run('bare', 8)
    out = []
    def add(goal, figure, ok, *rs, judged=True):
        missing = any(r is None for r in rs)
        out.append(dict(goal=goal, figure='not measured' if missing else figure(),
                        verdict=None if not judged else ('FAIL (not measured)' if missing else 'FAIL (errors)' if not clean(*rs) else verdict(ok())),
                        judged=judged))
    add(f'wildproof >= {GOALS["rps_8"]:,.0f} requests/s at 8 connections', lambda: f'{w8["rps"]:,.0f} requests/s', lambda: w8['rps'] >= GOALS['rps_8'], w8)
    add(f'wildproof p99 <= {GOALS["p99_1_ms"]:g} ms at 1 connection', lambda: f'{w1["p99_ms"]:.1f} ms', lambda: w1['p99_ms'] <= GOALS['p99_1_ms'], w1)
    add(f'wildproof p99 <= {GOALS["p99_8_ms"]:g} ms at 8 connections', lambda: f'{w8["p99_ms"]:.1f} ms', lambda: w8['p99_ms'] <= GOALS['p99_8_ms'], w8)
    add(f'wildproof >= {GOALS["x_mlflow"]:g}x mlflow\'s requests/s at 8 connections', lambda: f'{w8["rps"] / m8["rps"]:.2f}x ({w8["rps"]:,.0f} / {m8["rps"]:,.0f})',
        lambda: w8['rps'] >= GOALS['x_mlflow'] * m8['rps'], w8, m8)
    add('   the same at 1 connection (for information)', lambda: f'{w1["rps"] / m1["rps"]:.2f}x ({w1["rps"]:,.0f} / {m1["rps"]:,.0f})', None, w1, m1, judged=False)
    add(f'wildproof p50 and p99 <= {GOALS["x_bare"]:g}x the bare app\'s at 1 connection',
        lambda: f'p50 {w1["p50_ms"] / b1["p50_ms"]:.2f}x ({w1["p50_ms"]:.2f} / {b1["p50_ms"]:.2f} ms), p99 {w1["p99_ms"] / b1["p99_ms"]:.2f}x ({w1["p99_ms"]:.2f} / {b1["p99_ms"]:.2f} ms)',
        lambda: w1['p50_ms'] <= GOALS['x_bare'] * b1['p50_ms'] and w1['p99_ms'] <= GOALS['x_bare'] * b1['p99_ms'], w1, b1)
    add('   the same at 8 connections (for information)',
        lambda: f'p50 {w8["p50_ms"] / b8["p50_ms"]:.2f}x ({w8["p50_ms"]:.2f} / {b8["p50_ms"]:.2f} ms), p99 {w8["p99_ms"] / b8["p99_ms"]:.2f}x ({w8["p99_ms"]:.2f} / {b8["p99_ms"]:.2f} ms)',
        None, w8, b8, judged=False)
    if 1 not in conns or 8 not in conns:   # the goals are set at 1 and 8 connections
        for g in out:
            if g['judged'] and g['figure'] == 'not measured': g['verdict'] = 'FAIL (not measured: --connections lacks 1 or 8)'
    return out


# --------------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=10.0, help='measured seconds per server and connection count (default 10; wrk takes whole seconds: rounded up)')
    ap.add_argument('--warmup', type=float, default=2.0, help='warm-up seconds before each measurement, not counted (default 2; rounded up to whole seconds; 0: none)')
    ap.add_argument('--connections', default='1,8', help='connection counts, comma-separated (default 1,8: the goals are set there)')
    ap.add_argument('--records', type=int, default=300, help='distinct records the requests rotate through (default 300)')
    ap.add_argument('--model', default='credit_risk', help='the registered model served (default credit_risk, the demo\'s)')
    ap.add_argument('--used', type=Path, default=None, help='copy this store (after `wildproof demo`) as the used one; it is never written to')
    ap.add_argument('--cache', type=Path, default=HERE / 'out' / 'online-cache',
                    help='where the used store is built once when --used is not given (default bench/out/online-cache, git-ignored)')
    ap.add_argument('--fresh-rows', type=int, default=None, help='rows of the fresh store\'s demo world (default [demo] rows, as the used store\'s)')
    grp = ap.add_mutually_exclusive_group()
    grp.add_argument('--fresh-only', action='store_true', help='only the fresh store')
    grp.add_argument('--used-only', action='store_true', help='only the used store')
    ap.add_argument('--skip-mlflow', action='store_true', help='without `mlflow models serve`')
    ap.add_argument('--skip-bare', action='store_true', help='without the bare FastAPI app')
    ap.add_argument('--serve-args', default='', help='more arguments of `wildproof serve`, e.g. "--workers 2" (default none: one process)')
    ap.add_argument('--mlflow-args', default='', help='more arguments of `mlflow models serve`, e.g. "--workers 2" (default none: one process)')
    ap.add_argument('--setting', action='append', default=[], metavar='SECTION.KEY=VALUE',
                    help='a setting of `wildproof serve` (its settings file), e.g. serving.reload_seconds=60; repeatable (default: none, the defaults)')
    ap.add_argument('--timeout', type=float, default=5.0, help='wrk\'s timeout per request in seconds (default 5): a slower answer counts as an error')
    ap.add_argument('--wrk', default=shutil.which('wrk') or '/usr/bin/wrk', help='the wrk binary (default: on PATH, else /usr/bin/wrk)')
    ap.add_argument('--json', type=Path, default=None, help='also write the figures to this JSON file')
    ap.add_argument('--keep', action='store_true', help='keep the temporary folder (stores, bodies, server logs) and print where it is')
    ap.add_argument('--bare-app', type=Path, default=None, help=argparse.SUPPRESS)   # internal: run the bare app on a pickled pipeline
    ap.add_argument('--port', type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.bare_app is not None: bare_app(args.bare_app, args.port); return 0
    args.connections = [int(c) for c in args.connections.split(',') if c.strip()]
    try: args.setting = [(k.split('.', 1)[0], k.split('.', 1)[1], v) for k, _, v in (x.partition('=') for x in args.setting)]
    except IndexError: ap.error('--setting takes SECTION.KEY=VALUE, e.g. serving.reload_seconds=60')
    for k in ('json', 'used', 'cache'):   # before the working directory changes
        if getattr(args, k) is not None: setattr(args, k, getattr(args, k).resolve())
    if not Path(args.wrk).exists():
        print(f'wrk is missing ({args.wrk}): install Debian\'s wrk (`apt-get install wrk`; `python3 tools/dev.py test` does it as root)', file=sys.stderr)
        return 2

    import fastapi, mlflow, sklearn, uvicorn
    import wildproof
    from wildproof.settings import load_settings
    from wildproof.training import mlflow_release
    commit = source_commit(Path(wildproof.__file__).parent)
    t_start = time.perf_counter()
    print(f'wildproof {wildproof.__version__} from {Path(wildproof.__file__).parent} · commit {commit} · mlflow {mlflow.__version__} · '
          f'scikit-learn {sklearn.__version__} · fastapi {fastapi.__version__} · uvicorn {uvicorn.__version__} · {wrk_version(args.wrk)} · '
          f'python {platform.python_version()} · {os.cpu_count()} CPUs · load average {", ".join(f"{x:.2f}" for x in os.getloadavg())}', flush=True)
    print(f'wrk: 1 thread, {" and ".join(map(str, args.connections))} connections, '
          f'{wrk_seconds(args.warmup) if args.warmup > 0 else 0} s warm-up + {wrk_seconds(args.seconds)} s measured, '
          f'timeout {args.timeout:g} s; every server on 127.0.0.1 with OMP_NUM_THREADS=1 and its own defaults (processes counted below)'
          + (f' (wildproof serve {args.serve_args})' if args.serve_args else '') + (f' (mlflow models serve {args.mlflow_args})' if args.mlflow_args else ''), flush=True)

    work = Path(tempfile.mkdtemp(prefix='wildproof-bench-online-'))
    lua = work / 'post.lua'
    lua.write_text(WRK_LUA)
    figures = dict(args={k: str(v) for k, v in vars(args).items() if k not in ('bare_app', 'port')}, cpus=os.cpu_count(), commit=commit,
                   wildproof=str(Path(wildproof.__file__).parent), date=datetime.now(timezone.utc).isoformat(timespec='seconds'),
                   versions=dict(wildproof=wildproof.__version__, mlflow=mlflow.__version__, sklearn=sklearn.__version__, fastapi=fastapi.__version__,
                                 uvicorn=uvicorn.__version__, wrk=wrk_version(args.wrk), python=platform.python_version()),
                   load_start=os.getloadavg()[0], goals=GOALS, stores={})
    settings_file = work / 'settings.ini'
    settings_file.write_text(f'[store]\nroot = {work / "unused"}\n')   # the defaults, whatever settings.ini or WILDPROOF_* is around:
    for k in [k for k in os.environ if k.startswith('WILDPROOF_')]: del os.environ[k]   # wildproof's own calls that load the settings
    os.environ['WILDPROOF_SETTINGS'] = str(settings_file)                                # themselves read this file
    os.chdir(work)
    settings = load_settings(settings_file, env={})
    stores = [s for s in ('fresh', 'used') if not (s == 'fresh' and args.used_only) and not (s == 'used' and args.fresh_only)]
    try:
        for name in stores:
            root = work / name / 'store'
            (work / name).mkdir(parents=True, exist_ok=True)
            if name == 'fresh':
                print('\nbuilding the fresh store', flush=True)
                records = build_fresh(root, settings, args.fresh_rows or settings.demo.rows, settings.demo.seed, args.records)
            else:
                src = used_template(args)
                t = time.perf_counter()
                shutil.copytree(src, root, symlinks=True, ignore=shutil.ignore_patterns('*.lock'))   # as the tests copy the demo's store
                print(f'\nused store: a copy of {src} ({time.perf_counter() - t:.1f} s)', flush=True)
                from wildproof.store import Store
                records = served_records(Store(root), args.model, args.records)
            prep = prepare(name, root, work, records, args.model, args.records)
            prep.update(serve_args=shlex.split(args.serve_args), mlflow_args=shlex.split(args.mlflow_args), settings=args.setting)
            res = bench_store(args, prep, work, lua)
            figures['stores'][name] = dict(model=prep['model'], version=prep['version'], records=prep['records'], audit_before=prep['audit_before'], servers=res)
            mlflow_release(__import__('wildproof.store', fromlist=['Store']).Store(root), settings)

        print(f'\nsummary ({time.perf_counter() - t_start:.0f} s in all; 1-minute load average {figures["load_start"]:.2f} at the start, {load1():.2f} at the end; commit {commit})')
        hdr = (f'   {"store":6} {"server":10} {"conn":>4} {"requests/s":>11} {"p50 ms":>8} {"p95 ms":>8} {"p99 ms":>8} {"errors":>7} {"load":>11}'
               f' {"CPU ms/req":>10} {"procs":>5}')
        print(hdr)
        for name, st in figures['stores'].items():
            for kind, r in st['servers'].items():
                if 'runs' not in r: print(f'   {name:6} {kind:10} {"":>4} {"NOT MEASURED: " + r.get("error", "")[:200]}'); continue
                for c, x in r['runs'].items():
                    print(f'   {name:6} {kind:10} {c:4} {x["rps"]:11,.0f} {x["p50_ms"]:8.2f} {x["p95_ms"]:8.2f} {x["p99_ms"]:8.2f} {x["errors"]:7} '
                          f'{x["load_before"]:5.2f}-{x["load_after"]:5.2f} {x["cpu_ms_per_request"]:10.2f} {x["processes"]:5}')
        for name, st in figures['stores'].items():
            g = goals(st['servers'], args.connections)
            st['goals'] = g
            print(f'\n   goals on the {name} store ({st["model"]} v{st["version"]}):')
            for x in g:
                print(f'   {x["goal"]:62} {x["figure"]:55} {x["verdict"] or ""}')
        figures.update(load_end=load1(), seconds=time.perf_counter() - t_start)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=1, default=str))
    finally:
        if args.keep: print(f'\nkept {work}')
        else: shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
