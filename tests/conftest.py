"""Shared fixtures: every test gets its own store and settings that point at it (defaults otherwise)."""
import os
from pathlib import Path

import pytest

from wildproof.store import Store


@pytest.fixture(autouse=True)
def settings_file(tmp_path, monkeypatch) -> Path:
    "A settings file holding only `[store] root = <tmp_path>/store`, in force through WILDPROOF_SETTINGS."
    for var in [v for v in os.environ if v.startswith('WILDPROOF_')]: monkeypatch.delenv(var)
    f = tmp_path / 'settings.ini'
    f.write_text(f'[store]\nroot = {tmp_path / "store"}\n', encoding='utf-8')
    monkeypatch.setenv('WILDPROOF_SETTINGS', str(f))
    return f


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / 'store')


@pytest.fixture(scope='session')
def default_demo(tmp_path_factory):
    """The README's main job, run once per session as a user runs it: `wildproof demo` at its default size in a real process.
    Tests that only read its store share it; tests that change a store work on a copy (`demo_copy`)."""
    import subprocess, sys
    from types import SimpleNamespace
    reuse = os.environ.get('TEST_REUSE_DEMO')   # for a developer's quick reruns: a folder this fixture made before
    if reuse and (Path(reuse) / 'demo_stdout.txt').is_file():
        return SimpleNamespace(root=Path(reuse), store=Path(reuse) / 'store', out=(Path(reuse) / 'demo_stdout.txt').read_text())
    root = tmp_path_factory.mktemp('default_demo')
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    r = subprocess.run([str(Path(sys.executable).parent / 'wildproof'), '--store', str(root / 'store'), 'demo'], cwd=root, env=env,
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    (root / 'demo_stdout.txt').write_text(r.stdout)
    return SimpleNamespace(root=root, store=root / 'store', out=r.stdout)


@pytest.fixture
def demo_copy(default_demo, tmp_path, monkeypatch) -> Path:
    "A private copy of the default demo's store, in force through the settings; reports are not logged to the shared MLflow artifacts."
    import shutil
    dest = tmp_path / 'store'
    if dest.exists(): shutil.rmtree(dest)
    shutil.copytree(default_demo.store, dest, ignore=shutil.ignore_patterns('*.lock'))
    monkeypatch.setenv('WILDPROOF_REPORTS_LOG_TO_MLFLOW', 'false')
    return dest
