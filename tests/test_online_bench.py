"""bench/online.py (issue 20) runs in its smallest mode: every server answers under wrk with no error, and a verdict is printed per goal.

What the verdicts are is the benchmark's business, not this test's: no timing is asserted. Needs Debian's wrk
(`python3 tools/dev.py test` installs it); skipped without it.
"""
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WRK = Path('/usr/bin/wrk')


@pytest.mark.skipif(not WRK.exists(), reason=f'{WRK} is missing: install Debian\'s wrk (`apt-get install -y wrk`, or run tools/dev.py test)')
def test_the_online_benchmark_runs_and_judges_every_goal(tmp_path):
    out = tmp_path / 'online.json'
    cmd = [sys.executable, str(ROOT / 'bench' / 'online.py'), '--seconds', '1', '--warmup', '0', '--fresh-only', '--skip-mlflow',
           '--fresh-rows', '20000', '--records', '100', '--cache', str(tmp_path / 'cache'), '--wrk', str(WRK), '--json', str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    r = subprocess.run(cmd, cwd=tmp_path, env=dict(env, MLFLOW_DISABLE_TELEMETRY='true'), capture_output=True, text=True, timeout=300)
    report = r.stdout[-6000:] + r.stderr[-4000:]
    assert r.returncode == 0, report
    fig = json.loads(out.read_text())
    fresh = fig['stores']['fresh']
    assert set(fresh['servers']) == {'wildproof', 'bare'}, report
    for kind, res in fresh['servers'].items():
        assert 'runs' in res, f'{kind} was not measured: {res.get("error")}\n{report}'
        assert res['answers']['ok'], f'{kind} did not answer with the model\'s own scores: {res["answers"]}'
        assert sorted(res['runs']) == ['1', '8'], res['runs'].keys()   # JSON keys
        for c, run in res['runs'].items():
            assert run['requests'] > 0, f'{kind} at {c} connections answered nothing\n{report}'
            assert run['errors'] == 0, f'{kind} at {c} connections: {run["errors"]} errors ({run["non2xx"]} not 2xx, first {run["first_bad"]!r}; socket {run["socket"]})'
    judged = [g for g in fresh['goals'] if g['judged']]
    assert len(judged) == 5, fresh['goals']
    assert all(g['verdict'].split()[0] in ('PASS', 'FAIL') for g in judged), judged
    assert 'goals on the fresh store' in r.stdout
    for g in judged: assert g['goal'] in r.stdout
