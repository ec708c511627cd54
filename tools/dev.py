"""Set up the development environment and run the main job or every test. Needs only python3.

    python3 tools/dev.py demo [ARGS...]   # set up .venv, then `wildproof demo ARGS...`
    python3 tools/dev.py test [PYTEST ARGS...]   # set up .venv, then every test suite

Setup is idempotent: .venv is created when missing and the package is (re)installed, editable with its
dev extra, only when pyproject.toml changed since the last install. The installer is uv, installed
into the venv from PyPI; bytecode is compiled at install (Evidently imports in 4.5 s instead of 10-13 s).
`test` also makes sure Debian's /usr/bin/chromium is there for the browser tests (apt-get, as root; never `playwright install`),
and Debian's /usr/bin/wrk for the online benchmark's test (apt-get, as root).
"""
from __future__ import annotations
import hashlib, os, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / '.venv'
BIN = VENV / 'bin'
STAMP = VENV / '.wildproof-install'
CHROMIUM = Path('/usr/bin/chromium')
WRK = Path('/usr/bin/wrk')   # the HTTP load generator of bench/online.py


def run(*cmd, **kw):
    print('$', ' '.join(map(str, cmd)), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, **kw).returncode


def setup():
    if not (BIN / 'python').exists():
        if run(sys.executable, '-m', 'venv', VENV): sys.exit('could not create .venv')
    want = hashlib.sha256((ROOT / 'pyproject.toml').read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want: return
    if not (BIN / 'uv').exists() and run(BIN / 'python', '-m', 'pip', 'install', '-q', '--disable-pip-version-check', 'uv'):
        sys.exit('could not install uv')
    env = dict(os.environ, UV_COMPILE_BYTECODE='1', VIRTUAL_ENV=str(VENV))
    if run(BIN / 'uv', 'pip', 'install', '-q', '-p', BIN / 'python', '-e', '.[dev]', env=env): sys.exit('could not install wildproof')
    STAMP.write_text(want)


def ensure_debian(path: Path, package: str, needed_by: str):
    """Install Debian's `package` when `path` is missing, for `needed_by` (`apt-get update` only if the first install fails). Where
    that cannot be tried (no apt-get, not root) those tests skip, and this says so; where it is tried and fails, it stops."""
    if path.exists(): return
    if not shutil.which('apt-get') or os.geteuid() != 0:
        print(f'WARNING: {path} is missing and cannot be installed here (apt-get as root): {needed_by} will be SKIPPED. '
              f'Install {package} so that it is {path} to run them.', flush=True)
        return
    print(f'{path} is missing: installing Debian\'s {package} for {needed_by}', flush=True)
    if run('apt-get', 'install', '-y', '-q', package) and (run('apt-get', 'update', '-q') or run('apt-get', 'install', '-y', '-q', package)):
        sys.exit(f'could not install {package} with apt-get (needs the Debian archive): install it yourself, it must be {path}')
    if not path.exists(): sys.exit(f'apt-get installed {package} but {path} is still missing')


def ensure_chromium(): ensure_debian(CHROMIUM, 'chromium', 'the browser tests')


def ensure_wrk(): ensure_debian(WRK, 'wrk', 'the online benchmark\'s test (tests/test_online_bench.py)')


def env():
    e = dict(os.environ, MLFLOW_DISABLE_TELEMETRY='true', VIRTUAL_ENV=str(VENV), PYTHONDONTWRITEBYTECODE='1')
    e['PATH'] = f'{BIN}{os.pathsep}{e.get("PATH", "")}'
    return e


def test(extra):
    ensure_chromium()
    ensure_wrk()
    steps = [
        ('notebooks (nbdev-test)', [BIN / 'nbdev-test', '--n-workers', '2', '--do-print']),
        ('tests (pytest)', [BIN / 'python', '-m', 'pytest', '-q', 'tests', *extra]),
        ('executed notebooks (nbval)', [BIN / 'python', '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--nbval-lax', 'nbs/index.ipynb']),
    ]
    failed = []
    for name, cmd in steps:
        t = time.time()
        print(f'\n=== {name}', flush=True)
        rc = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env()).returncode
        print(f'=== {name}: {"ok" if rc == 0 else f"FAILED (exit {rc})"} in {time.time() - t:.0f} s', flush=True)
        if rc: failed.append(name)
    if failed: sys.exit(f'failed: {", ".join(failed)}')


if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in ('demo', 'test', 'setup'):
        sys.exit(__doc__)
    setup()
    what, rest = sys.argv[1], sys.argv[2:]
    if what == 'demo': sys.exit(subprocess.run([str(BIN / 'wildproof'), 'demo', *rest], cwd=ROOT, env=env()).returncode)
    if what == 'test': test(rest)
