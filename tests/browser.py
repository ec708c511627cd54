"""Real-browser test helpers for Panel dashboards: a headless Chromium, a `panel serve` subprocess, screenshots.

    from tests.browser import chromium, serve_panel, screenshot
    with serve_panel([app], extra_args=['--warm']) as url, chromium(tmp_path) as browser:
        page = browser.new_page(); page.goto(url + '/app')
        page.get_by_text('Hello dashboards').wait_for()   # Panel renders in shadow DOM: use get_by_text / get_by_role
        screenshot(page, 'hello')

Chromium is Debian's /usr/bin/chromium (`python3 tools/dev.py test` installs it; never `playwright install`).
Tests using `chromium` are skipped when it is absent.
"""
from __future__ import annotations
import contextlib, os, signal, socket, subprocess, sys, tempfile, time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path('/usr/bin/chromium')
# Read at import: the autouse `settings_file` fixture removes every WILDPROOF_* variable while a test runs.
ARTIFACTS = Path(os.environ.get('WILDPROOF_TEST_ARTIFACTS', ROOT / '.test-artifacts'))
# Without the background-networking flags Chromium's own connections are refused by a closed network and it stalls.
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']


@contextlib.contextmanager
def chromium(tmp_path: Path, timeout_ms: int = 20_000):
    "A headless Chromium BrowserContext (a fresh profile under `tmp_path`); actions and waits time out after `timeout_ms`."
    if not CHROMIUM.exists(): pytest.skip(f'{CHROMIUM} is missing: install it with `apt-get install -y chromium` (or run tools/dev.py test)')
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / 'chromium-profile'), executable_path=str(CHROMIUM), headless=True,
                                                   args=CHROMIUM_ARGS, viewport={'width': 1280, 'height': 800})
        ctx.set_default_timeout(timeout_ms)
        try: yield ctx
        finally: ctx.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_panel(apps: Sequence[Path], *, port: int | None = None, env: dict | None = None, extra_args: Sequence[str] = (),
                wait: float = 90) -> Iterator[str]:
    """Run `panel serve APPS` (this venv's Python) on 127.0.0.1 and yield its base URL (`http://127.0.0.1:PORT`) once the root
    answers an HTTP GET (any status: with --basic-auth it is a redirect to /login). The server's process group is ended at exit.
    `env` is added to os.environ. An app `dash.py` is at `URL/dash`."""
    port = port or free_port()
    cmd = [sys.executable, '-m', 'panel', 'serve', *map(str, apps), '--address', '127.0.0.1', '--port', str(port),
           '--allow-websocket-origin', f'127.0.0.1:{port}', *map(str, extra_args)]
    url = f'http://127.0.0.1:{port}'
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})), start_new_session=True)

        def tail(n=3000):
            log.flush(); log.seek(0)
            return log.read().decode(errors='replace')[-n:]
        try:
            deadline = time.monotonic() + wait
            while True:
                if proc.poll() is not None:
                    pytest.fail(f'panel serve exited with {proc.returncode} before answering\n$ {" ".join(cmd)}\n{tail()}')
                try:
                    httpx.get(url + '/', timeout=5, follow_redirects=False)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        pytest.fail(f'panel serve did not answer {url}/ within {wait:.0f} s\n$ {" ".join(cmd)}\n{tail()}')
                    time.sleep(0.2)
            yield url
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGTERM)
                try: proc.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def screenshot(page, name: str) -> Path:
    "Save a full-page PNG `name`.png under the test-artifacts folder (WILDPROOF_TEST_ARTIFACTS, else <repo>/.test-artifacts)."
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f'{name}.png'
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, url: str, user: str, password: str):
    "Open `url` (a page behind Panel's basic auth), check it sends the browser to the login form, and log in through it."
    page.goto(url)
    assert '/login' in page.url, page.url
    page.fill('input[name=username]', user)
    page.fill('input[name=password]', password)
    page.get_by_role('button', name='Login').click()
