"""The schedule: report jobs declared in settings.ini ([schedule]), run by `wildproof schedule run` (from cron) or `schedule serve`.

Each job finds what is due from the store itself, so a missed pass is caught up by the next one, in order. A job holds a
lock while it runs (a second, overlapping pass skips it); a report is written by `run_report` in one rename, so a crash
mid-run leaves no partial result and the next pass repeats that report.
"""
from __future__ import annotations

import fcntl, json, os, signal, time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
import pandas as pd

from .reports import ReportError, index, run_report
from .settings import load_settings
from .store import Store, utcnow

JOBS = ('validation', 'evaluation', 'monitoring', 'model_card')
WORKERS = max(1, min(2, os.cpu_count() or 1))
PERIODS = dict(hourly=pd.Timedelta(hours=1), daily=pd.Timedelta(days=1), weekly=pd.Timedelta(days=7), monthly=pd.Timedelta(days=30))


@contextmanager
def _try_lock(store: Store, name: str):
    "Yield True while holding the lock `name`, or False at once when another process holds it."
    (store.root / 'locks').mkdir(exist_ok=True)
    with open(store.root / 'locks' / f'{name}.lock', 'w') as f:
        try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try: yield True
        finally: fcntl.flock(f, fcntl.LOCK_UN)


def _reported(store: Store, kind: str) -> set:
    r = index(store, kind=kind, status='ok')
    return set(zip(r.model, r.version, r.name))


def due(store: Store, job: str, *, as_of=None, settings=None) -> list[dict]:
    "The reports job `job` would run now: a list of parameter dicts, oldest first."
    st = settings or load_settings()
    as_of = pd.Timestamp(as_of or utcnow())
    as_of = as_of.tz_localize('UTC') if as_of.tzinfo is None else as_of.tz_convert('UTC')
    how = st.schedule[job]
    if how == 'off': return []
    if job == 'validation':
        v = store.sql('select snapshot_id, contract, status from validations order by created_at')
        if how == 'rejected': v = v[v.status == 'rejected']
        done = {n for _, _, n in _reported(store, 'validation')}
        return [dict(snapshot=r.snapshot_id, contract=r.contract) for r in v.drop_duplicates(['snapshot_id', 'contract']).itertuples() if r.snapshot_id not in done]
    if job == 'evaluation':
        g = store.sql("select model, version, verdict_id from verdicts where kind = 'gate' order by created_at")
        done = _reported(store, 'evaluation')
        return [dict(model=r.model, version=r.version) for r in g.itertuples() if (r.model, r.version, r.verdict_id[:12]) not in done]
    if job == 'model_card':   # the production version of each model; a card whose evidence did not change is recognised by the runner
        a = store.sql("select model, arg_max(version, created_at) as version from aliases where alias = 'production' group by 1 order by 1")
        return [dict(model=r.model, version=r.version) for r in a.itertuples() if r.version]
    if job == 'monitoring':   # every window since the first answer that has no report yet, or metrics computed after its last report began
        from .monitoring import production_models, window_label, windows_between
        from .store import utc
        g = st.monitoring.window
        began = {}   # (model, window label) -> when its latest report of this granularity, for all versions, started
        for r in index(store, kind='monitoring', status='ok').itertuples():
            p = json.loads(r.parameters_json)
            if p.get('granularity') == g and not p.get('version'): began[(r.model, r.name)] = max(began.get((r.model, r.name), utc(r.started_at)), utc(r.started_at))
        out = []
        for m in production_models(store):
            first = store.sql("select min(coalesce(event_time, created_at)) as t from predictions where model = $m and route <> 'shadow'", dict(m=m)).t.iloc[0]
            if first is None or pd.isna(first): continue
            c = store.sql('select window_start, max(computed_at) as t from metrics where model = $m and granularity = $g group by 1', dict(m=m, g=g))
            computed = {utc(w): utc(t) for w, t in zip(c.window_start, c.t)}
            for s, e in windows_between(first, as_of, g):
                b = began.get((m, window_label(s, g)))
                if b is None or (s in computed and computed[s] > b):
                    out.append(dict(model=m, window=s.isoformat(), granularity=g, as_of=as_of.isoformat()))
        return out
    raise ReportError(f'unknown job {job!r} (jobs: {", ".join(JOBS)})')


def _last_pass(store: Store, job: str):
    e = store.sql("select max(time) as t from events where kind = 'schedule.pass' and subject = $j", dict(j=job)).t.iloc[0]
    return None if e is None or pd.isna(e) else pd.Timestamp(e)


def run(store: Store | None = None, *, jobs=None, as_of=None, settings=None, force: bool = False, compute: bool = True, progress: bool = True,
        echo=print) -> pd.DataFrame:
    """One pass of the schedule: every due report of every job (or of `jobs`), in order. Returns one row per report run.

    The monitoring job first computes the due windows (`monitoring.monitor`), unless `compute` is False (their metrics are already stored)."""
    from tqdm.auto import tqdm
    st = settings or load_settings()
    store = store or Store.from_settings(st)
    rows = []
    for job in jobs or JOBS:
        if job not in JOBS: raise ReportError(f'unknown job {job!r} (jobs: {", ".join(JOBS)})')
        if st.schedule[job] == 'off': continue
        if job == 'monitoring' and not force:
            last = _last_pass(store, job)
            if last is not None and utcnow() - last < PERIODS[st.schedule.monitoring]:
                echo(f'{job}: not due (last pass {last:%Y-%m-%d %H:%M}, {st.schedule.monitoring})'); continue
        with _try_lock(store, f'schedule-{job}') as mine:
            if not mine: echo(f'{job}: skipped, another pass of this job is running'); continue
            if job == 'monitoring' and compute:
                from .monitoring import MonitoringError, monitor
                try: monitor(store, as_of=as_of, settings=st, progress=progress)
                except MonitoringError as e: echo(f'{job}: {e}'); continue
            todo = due(store, job, as_of=as_of, settings=st)
            made = 0

            def one(p):
                try: r = run_report(job, p, store=store, settings=st, actor='schedule')
                except ReportError as e: return dict(job=job, status='error', error=str(e), path=None, **{k: p.get(k) for k in ('model', 'version')})
                return dict(job=job, status=r['status'], model=r['model'], version=r['version'], name=r['name'], path=r['path'], error=r.get('error'))
            # reports run oldest first, WORKERS at a time: each is a kernel process of its own
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                for r in tqdm(pool.map(one, todo), total=len(todo), desc=f'{job} reports', unit='report', disable=not progress or len(todo) < 2, leave=False):
                    rows.append(r)
                    made += r['status'] not in ('exists', 'error')
            store.event('schedule.pass', job, 'schedule', reports=made, checked=len(todo))
            echo(f'{job}: {made} new report(s), {len(todo) - made} unchanged')
    return pd.DataFrame(rows, columns=['job', 'status', 'model', 'version', 'name', 'path', 'error'])


def serve(store: Store | None = None, *, settings=None, echo=print, passes: int | None = None):
    "Run the schedule every `[schedule] interval_seconds` until interrupted (Ctrl-C or SIGTERM), or for `passes` passes."
    st = settings or load_settings()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    n = 0
    try:
        while not stop and (passes is None or n < passes):
            t = time.time()
            run(store, settings=st, echo=echo, progress=False)
            n += 1
            while not stop and time.time() - t < st.schedule.interval_seconds and (passes is None or n < passes): time.sleep(0.5)
    except KeyboardInterrupt: pass
    echo(f'schedule stopped after {n} pass(es)')
