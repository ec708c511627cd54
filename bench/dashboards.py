#!/usr/bin/env python
"""Benchmark: the drift dashboard's first render in a real browser with ten million predictions in the audit log, against the
same dashboard over the demo's own audit log, measured in the same run.

    .venv/bin/python bench/dashboards.py                        # a demo store (about 4 minutes), grown to 10 million predictions
    .venv/bin/python bench/dashboards.py --from /path/to/store  # start from a copy of an existing demo store
    .venv/bin/python bench/dashboards.py --rows 2000000 --repeats 3

What it does, in a temporary folder deleted at the end:

1. A store. `wildproof demo` at its default size (or a copy of --from): its audit log holds about 157,000 predictions, and
   monitoring has stored its metrics by month.
2. Baseline. `wildproof dashboards --no-auth` serves that store (warmed); headless Chromium (Debian's, through Playwright)
   loads /drift once untimed, then --repeats times: the time from navigation to the PSI heatmap drawn (first render) and to
   every chart drawn, the feature distribution included (it reads one month of the audit log itself, after the first
   render).
3. Ten million. The audit log grows to --rows predictions: the demo's predictions appended again and again (new sequence
   numbers and request ids, the same months), one million rows a commit; the server restarts and the same loads are timed.
4. Prints both, the ratio, and PASS/FAIL for the goal: first render at most 2 s with --rows predictions (never asserted).
"""
from __future__ import annotations
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.browser import chromium, free_port   # noqa: E402  (the same browser and port helpers as the tests)
EXE = Path(sys.executable).parent / 'wildproof'


def serve(store: Path, port: int) -> subprocess.Popen:
    import httpx
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    p = subprocess.Popen([str(EXE), '--store', str(store), 'dashboards', '--no-auth', '--port', str(port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t = time.time()
    while time.time() - t < 180:
        try: httpx.get(f'http://127.0.0.1:{port}/', timeout=5); return p
        except httpx.HTTPError: time.sleep(0.5)
    raise SystemExit('the dashboards did not start')


def stop(p):
    os.killpg(p.pid, signal.SIGTERM); p.wait(timeout=30)


def loads(url: str, repeats: int, tmp: Path) -> list[tuple[float, float]]:
    "Time `repeats` page loads (after one untimed, which also counts the charts a complete page has)."
    out, charts = [], None
    with chromium(tmp, timeout_ms=120_000) as browser:
        for i in range(repeats + 1):
            page = browser.new_page()
            t = time.perf_counter()
            page.goto(url + '/drift')
            page.locator('img').first.wait_for()                   # the PSI heatmap: the first render
            first = time.perf_counter() - t
            if charts is None:
                page.wait_for_timeout(8000); charts = page.locator('img').count()
            while page.locator('img').count() < charts: page.wait_for_timeout(20)
            every = time.perf_counter() - t
            page.close()
            if i: out.append((first, every))
    return out


def grow(store: Path, rows: int):
    from wildproof.store import Store
    s = Store(store)
    n0 = int(s.sql('select count(*) as n from predictions').n.iloc[0])
    top = int(s.sql('select max(seq) as m from predictions').m.iloc[0]) + 1
    k, have, t = 1, n0, time.time()
    while have < rows:
        take = min(rows - have, 1_000_000)
        reps = -(-take // n0)
        con = s.connect(['predictions'])
        tab = con.sql('''select seq + $top * k as seq, request_id || '-r' || k as request_id, * exclude (seq, request_id, k)
                              from predictions, range($k0, $k1) r(k) limit $take''', params=dict(top=top, k0=k, k1=k + reps, take=take)).to_arrow_table()
        con.close()
        s.append('predictions', tab)
        have += tab.num_rows; k += reps
        print(f'   audit log: {have:,} predictions ({time.time() - t:.0f} s)', flush=True)
    return n0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=10_000_000)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--from', dest='src', help='a demo store to copy instead of running the demo')
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='wp-bench-dash-'))
    try:
        store = tmp / 'store'
        if a.src: shutil.copytree(a.src, store, ignore=shutil.ignore_patterns('*.lock'))
        else:
            print('1. the demo store (wildproof demo, default size)...', flush=True)
            subprocess.run([str(EXE), '--store', str(store), 'demo'], check=True, stdout=subprocess.DEVNULL)
        res = {}
        for label in ('demo', 'grown'):
            if label == 'grown':
                print(f'3. growing the audit log to {a.rows:,} predictions...', flush=True)
                res['n0'] = grow(store, a.rows)
            port = free_port()
            p = serve(store, port)
            try: res[label] = loads(f'http://127.0.0.1:{port}', a.repeats, tmp / label)
            finally: stop(p)
            f = [x[0] for x in res[label]]; e = [x[1] for x in res[label]]
            print(f'{"2" if label == "demo" else "4"}. {label}: first render best {min(f):.2f} s, median {statistics.median(f):.2f} s; '
                  f'every chart best {min(e):.2f} s, median {statistics.median(e):.2f} s', flush=True)
        from wildproof.store import Store
        n = int(Store(store).sql('select count(*) as n from predictions').n.iloc[0])
        fd, fg = statistics.median(x[0] for x in res['demo']), statistics.median(x[0] for x in res['grown'])
        ed, eg = statistics.median(x[1] for x in res['demo']), statistics.median(x[1] for x in res['grown'])
        print('\n                                   predictions   first render (median)   every chart (median)')
        print(f'demo audit log                     {res["n0"]:>11,}   {fd:>14.2f} s          {ed:>10.2f} s')
        print(f'grown audit log                    {n:>11,}   {fg:>14.2f} s          {eg:>10.2f} s')
        print(f'ratio grown / demo                                {fg / fd:>10.2f}x            {eg / ed:>8.2f}x')
        print(f'goal: first render <= 2 s with {n:,} predictions: {"PASS" if fg <= 2 else "FAIL"} ({fg:.2f} s)')
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
