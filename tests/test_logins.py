"""The dashboards' users file: scrypt hashes, never passwords; plain-text passwords refused with the command that fixes them."""
import json, os, stat, subprocess, sys
from pathlib import Path

import pytest

from wildproof.cli import dashboards_command
from wildproof.logins import LoginError, check_login, check_password, hash_password, read_users, set_user
from wildproof.principals import login
from wildproof.settings import WildproofError, load_settings

EXE = Path(sys.executable).parent / 'wildproof'


def test_a_hash_checks_its_password_only():
    h = hash_password('correct horse battery')
    assert h.startswith('scrypt:16384:8:1:') and 'correct' not in h
    assert check_password(h, 'correct horse battery')
    assert not check_password(h, 'correct horse batterY') and not check_password(h, '')
    assert hash_password('correct horse battery') != h                       # a new salt each time
    assert not check_password('correct horse battery', 'correct horse battery')   # a plain "hash" never matches
    assert not check_password('scrypt:2:1:1:AAAA:AAAA', 'x') and not check_password('scrypt:1099511627776:8:1:AAAA:AAAA', 'x')   # malformed, too costly
    with pytest.raises(LoginError, match='at least 8'): hash_password('short')


def test_users_are_added_changed_and_removed_in_a_file_only_their_owner_reads(tmp_path):
    f = tmp_path / 'sub' / 'users.json'
    assert set_user(f, 'ana', 'correct horse battery') is False
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert check_login(f, 'ana', 'correct horse battery') and not check_login(f, 'ana', 'wrong password')
    assert not check_login(f, 'nobody', 'correct horse battery')
    assert set_user(f, 'ana', 'another long passphrase') is True
    assert check_login(f, 'ana', 'another long passphrase') and not check_login(f, 'ana', 'correct horse battery')
    set_user(f, 'ben', 'a third long passphrase')
    set_user(f, 'ana', None)
    assert list(read_users(f)) == ['ben']
    with pytest.raises(LoginError, match="no user 'ana'"): set_user(f, 'ana', None)
    for bad in ('', ' ana', 'a:b'):
        with pytest.raises(LoginError, match='user name'): set_user(f, bad, 'a long passphrase')


def test_a_plain_password_or_a_broken_file_is_refused_with_the_fix(tmp_path):
    f = tmp_path / 'users.json'
    f.write_text(json.dumps({'ana': 'correct horse battery', 'ben': hash_password('a long passphrase')}))
    with pytest.raises(LoginError, match=r'password of ana in plain text.*wildproof dashboard-user NAME'): read_users(f)
    assert not check_login(f, 'ana', 'correct horse battery')                # nobody logs in from such a file
    f.write_text('{"ana": ')
    with pytest.raises(LoginError, match='is not JSON'): read_users(f)
    f.write_text('["ana"]')
    with pytest.raises(LoginError, match='JSON object'): read_users(f)
    with pytest.raises(LoginError, match='no dashboard users file'): read_users(tmp_path / 'none.json')


def test_the_dashboards_start_only_with_hashed_users(tmp_path, monkeypatch):
    store = tmp_path / 'store'
    store.mkdir(); (store / 'store.json').write_text('{}')
    users = tmp_path / 'users.json'
    monkeypatch.setenv('WILDPROOF_ACCESS_PRINCIPALS_FILE', str(users))
    users.write_text(json.dumps({'ana': 'correct horse battery'}))
    with pytest.raises(WildproofError, match='plain text'): dashboards_command(store, load_settings(), host='127.0.0.1', port=1)
    users.write_text('{}')
    with pytest.raises(WildproofError, match='has no people'): dashboards_command(store, load_settings(), host='127.0.0.1', port=1)
    set_user(users, 'ana', 'correct horse battery')
    cmd, env = dashboards_command(store, load_settings(), host='127.0.0.1', port=1)
    assert '--basic-auth' not in cmd and cmd[cmd.index('--auth-module') + 1].endswith('wildproof/dashboard_auth.py')
    assert env['WILDPROOF_ACCESS_PRINCIPALS_FILE'] == str(users.resolve()) and '--cookie-secret' in cmd
    cmd, _ = dashboards_command(store, load_settings(), host='127.0.0.1', port=1, auth='none')
    assert '--auth-module' not in cmd


def test_dashboard_user_command(tmp_path):
    users = tmp_path / 'users.json'
    env = {**{k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}, 'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(users)}
    run = lambda *a, stdin='': subprocess.run([str(EXE), 'dashboard-user', *a], input=stdin, text=True, capture_output=True, env=env, timeout=60)
    r = run('ana', '--password-stdin', stdin='correct horse battery\n')
    assert r.returncode == 0 and 'added ana (stakeholder)' in r.stdout and login('ana', 'correct horse battery', path=users).roles == ('stakeholder',)
    r = run('ana', '--password-stdin', stdin='short\n')
    assert r.returncode == 1 and 'at least 8' in r.stderr and 'Traceback' not in r.stderr
    r = run('ana', '--password-stdin', stdin='another long passphrase\n')
    assert r.returncode == 0 and 'changed the password of ana' in r.stdout
    assert run('ana', '--remove').returncode == 0 and json.loads(users.read_text())['people'] == {}
    r = run('ana', '--remove')
    assert r.returncode == 1 and "no user 'ana'" in r.stderr
