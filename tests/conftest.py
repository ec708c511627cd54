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
