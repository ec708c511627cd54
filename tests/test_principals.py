"""Principals: people with roles and service clients with scopes in one file, authenticated from the shell, the dashboards and
the REST service (decision 0017). Real files, real processes, the real ssh-keygen."""
import json, os, stat, subprocess, sys, time
from pathlib import Path

import pytest

from tests.people import PASSWORD, TEAM, as_, team
from tests.test_cli import run
from wildproof import principals as P
from wildproof.logins import hash_password
from wildproof.settings import load_settings
from wildproof.store import Store

SSH_KEYGEN = '/usr/bin/ssh-keygen'


def refused(match, f, *a, **k):
    with pytest.raises(P.AccessError, match=match): f(*a, **k)


def test_a_person_logs_in_with_their_password_only(tmp_path):
    f = tmp_path / 'sub' / 'principals.json'
    assert P.add_person(f, 'vic', 'correct horse battery', ['validator']) is False
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    vic = P.login('vic', 'correct horse battery', path=f)
    assert (vic.name, vic.kind, vic.roles) == ('vic', 'person', ('validator',)) and vic.proof and vic.proof not in repr(vic)
    # impersonation: another's name with a wrong password, an unknown name, a client's name
    refused(r"cannot act as 'vic': wrong password", P.login, 'vic', 'correct horse batterY', path=f)
    refused(r"cannot act as 'nobody': not in it", P.login, 'nobody', 'correct horse battery', path=f)
    P.add_client(f, 'scorer', ['predict'])
    refused(r"cannot act as 'scorer': a service client", P.login, 'scorer', 'whatever it is', path=f)
    # a principal made by hand, or carrying another's proof, is not authenticated
    refused('was not authenticated', P.require, P.Principal('ops', 'person', roles=('operator',)), path=f)
    refused('was not authenticated', P.require, P.Principal('ana', 'person', roles=('validator',), proof=vic.proof), path=f)
    refused('not an authenticated principal', P.require, 'vic', path=f)
    # nothing secret leaves the file through list_principals, and the file holds no password
    assert 'correct horse' not in f.read_text() and 'scrypt:' not in json.dumps(P.list_principals(f))
    for bad in ('', ' vic', 'a:b', 'x' * 65, '../x'):
        refused('principal name', P.add_person, f, bad, 'correct horse battery', ['developer'])
    refused('unknown role admin', P.add_person, f, 'ann', 'correct horse battery', ['admin'])
    refused('at least one role', P.add_person, f, 'ann', 'correct horse battery', [])
    refused('a new person needs a password', P.add_person, f, 'ann', None, ['developer'])
    refused("'scorer' is a service client", P.add_person, f, 'scorer', 'correct horse battery', ['developer'])


def test_a_role_removed_is_refused_at_once(tmp_path):
    f = team(tmp_path / 'p.json')
    ops = P.login('ops', PASSWORD, path=f)
    st = load_settings(None, env={'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(f)})
    assert P.require(ops, 'promote', settings=st).roles == ('operator',)        # by the rule's name: [access] promote_roles
    assert P.require(ops, 'operator', 'auditor', path=f) == ops
    P.set_roles(f, 'ops', ['stakeholder'])                                        # the same login, moments later
    refused(r'ops may not do this: \[access\] promote_roles needs operator; ops has stakeholder', P.require, ops, 'promote', settings=st)
    refused(r'a technical approval needs validator; ops has stakeholder', P.require, ops, 'validator', rule='a technical approval', path=f)
    assert P.require(ops, path=f).roles == ('stakeholder',)                     # still logged in, with the roles of now
    P.remove(f, 'ops')
    refused("'ops' is no longer in", P.require, ops, path=f)
    refused('unknown role or action', P.require, P.login('dev', PASSWORD, path=f), 'launch', settings=st)


def test_a_client_token_is_shown_once_kept_hashed_and_refused_once_revoked(tmp_path):
    f = tmp_path / 'p.json'
    P.add_person(f, 'ops', PASSWORD, ['operator'])
    token = P.add_client(f, 'scorer', ['predict'])
    assert token.startswith('wp_') and len(token) > 40 and token not in f.read_text()
    refused("service client 'scorer' exists: to rotate", P.add_client, f, 'scorer', ['predict'])
    refused('unknown scope train', P.add_client, f, 'other', ['train'])
    checker = P.TokenChecker(f, reload_seconds=0.5)
    c = checker.check(token)
    assert (c.name, c.kind, c.scopes) == ('scorer', 'client', ('predict',)) and c.holds('predict') and not c.holds('outcomes')
    assert P.require(c, 'predict', path=f) == c
    refused('scorer may not do this: this action needs outcomes; scorer has predict', P.require, c, 'outcomes', path=f)
    for bad in (token + 'x', token[:-1], '', None, 'Bearer ' + token, 'wp_' + 'A' * 43, 'x' * 10_000):
        assert checker.check(bad) is None
    admin = P.add_client(f, 'admin-job', ['admin'])
    time.sleep(0.6)
    assert checker.check(admin).holds('predict', 'outcomes')                   # admin implies every scope
    # revoked: refused within the reload interval (and only re-read when the file changed)
    P.revoke_client(f, 'scorer')
    t = time.monotonic()
    while checker.check(token) is not None: time.sleep(0.01)
    assert time.monotonic() - t <= 0.5 + 0.2
    assert checker.check(admin) is not None
    refused("no service client 'scorer'", P.revoke_client, f, 'scorer')
    # a file gone or broken leaves no client, and says why
    f.write_text('{"version": 1, "secret": "x", "people": {}, "clients": {"a": {"token": "wp_plain"}}}')
    time.sleep(0.6)
    assert checker.check(admin) is None and 'plain text' in checker.error


def test_files_are_written_by_their_owner_only_and_plain_text_is_refused(tmp_path):
    f = tmp_path / 'p.json'
    f.write_text(json.dumps({'version': 1, 'secret': 'c2VjcmV0', 'people': {'ana': {'password': 'correct horse battery', 'roles': ['developer']}},
                             'clients': {}}))
    refused(r'holds the secret of ana in plain text.*wildproof user add NAME', P.login, 'ana', 'correct horse battery', path=f)
    refused('plain text', P.list_principals, f)
    refused('plain text', P.add_person, f, 'ben', PASSWORD, ['developer'])     # nothing is written over such a file
    f.write_text(json.dumps({'version': 1, 'secret': 'c2VjcmV0', 'people': {}, 'clients': {'job': {'token': 'wp_abc', 'scopes': ['predict']}}}))
    refused('holds the secret of job in plain text', P.list_principals, f)
    f.write_text('{"people": ')
    refused('is not JSON', P.list_principals, f)
    f.write_text(json.dumps({'version': 2}))
    refused('version 2', P.list_principals, f)
    refused('no principals file at', P.login, 'ana', PASSWORD, path=tmp_path / 'none.json')
    # written whole, 0600 whatever the umask, one writer at a time: eight processes adding at once lose nobody
    old = os.umask(0o000)
    try: P.add_person(tmp_path / 'q.json', 'ana', PASSWORD, ['developer'])
    finally: os.umask(old)
    assert stat.S_IMODE((tmp_path / 'q.json').stat().st_mode) == 0o600
    code = 'import sys; from wildproof.principals import add_person; add_person(sys.argv[1], sys.argv[2], "a long passphrase", ["auditor"])'
    procs = [subprocess.Popen([sys.executable, '-c', code, str(tmp_path / 'q.json'), f'p{i}']) for i in range(8)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert {p['name'] for p in P.list_principals(tmp_path / 'q.json')} == {'ana', *(f'p{i}' for i in range(8))}


def test_the_dashboards_old_users_file_is_read_as_stakeholders(tmp_path):
    f = tmp_path / 'users.json'
    f.write_text(json.dumps({'ana': hash_password('correct horse battery'), 'ben': hash_password('another passphrase')}))
    ana = P.login('ana', 'correct horse battery', path=f)
    assert ana.roles == ('stakeholder',) and P.require(ana, 'stakeholder', path=f) == ana
    refused('wrong password', P.login, 'ben', 'correct horse battery', path=f)
    assert [(p['name'], p['roles']) for p in P.list_principals(f)] == [('ana', ['stakeholder']), ('ben', ['stakeholder'])]
    f.write_text(json.dumps({'ana': 'correct horse battery'}))
    refused(r'holds the password of ana in plain text', P.login, 'ana', 'correct horse battery', path=f)
    # the first change writes the current format, keeping the old users and their passwords
    f.write_text(json.dumps({'ana': hash_password('correct horse battery')}))
    f.chmod(0o644)
    P.add_person(f, 'vic', PASSWORD, ['validator'])
    data = json.loads(f.read_text())
    assert data['version'] == 1 and data['secret'] and set(data['people']) == {'ana', 'vic'}
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert P.login('ana', 'correct horse battery', path=f).roles == ('stakeholder',)


def test_an_ssh_public_key_is_checked_and_a_private_key_refused(tmp_path):
    subprocess.run([SSH_KEYGEN, '-q', '-t', 'ed25519', '-N', '', '-C', 'vic@bank', '-f', str(tmp_path / 'k')], check=True)
    pub = (tmp_path / 'k.pub').read_text()
    f = tmp_path / 'p.json'
    P.add_person(f, 'vic', PASSWORD, ['validator'], ssh_key=pub)
    assert P.ssh_key(f, 'vic') == pub.strip() and P.list_principals(f)[0]['ssh_key'] == pub.strip()
    refused('not an SSH public key', P.add_person, f, 'vic', None, ['validator'], ssh_key=(tmp_path / 'k').read_text())
    kind, blob, *_ = pub.split()
    refused('not a ssh-rsa key', P.add_person, f, 'vic', None, ['validator'], ssh_key=f'ssh-rsa {blob}')
    refused('not base64', P.add_person, f, 'vic', None, ['validator'], ssh_key=f'{kind} !!!')
    P.add_person(f, 'vic', None, ['validator', 'auditor'])                        # roles changed: password and key kept
    assert P.login('vic', PASSWORD, path=f).roles == ('validator', 'auditor') and P.ssh_key(f, 'vic') == pub.strip()


# ---- from the shell -------------------------------------------------------------------------------------------------

@pytest.fixture
def shell(tmp_path):
    "A project folder whose settings put the principals in people.json; commands run as a user runs them."
    (tmp_path / 'settings.ini').write_text('[store]\nroot = store\n[access]\nprincipals_file = people.json\n')
    return lambda *a, input=None, check=True: run(*a, cwd=tmp_path, check=check, input=input)


def test_user_commands_round_trip(shell, tmp_path):
    f = tmp_path / 'people.json'
    r = shell('user', 'add', 'vic', '--role', 'validator', '--password-stdin', input=PASSWORD + '\n')
    assert 'added vic: validator' in r.stdout and 'not on the governance record' in r.stdout
    assert P.login('vic', PASSWORD, path=f).roles == ('validator',) and stat.S_IMODE(f.stat().st_mode) == 0o600
    shell('status')                                                                # a store now: every change is recorded
    subprocess.run([SSH_KEYGEN, '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / 'k')], check=True)
    r = shell('user', 'add', 'ana', '--role', 'developer', '--role', 'operator', '--ssh-key', tmp_path / 'k.pub', '--password-stdin',
              input='ana has a passphrase\n')
    assert 'added ana: developer, operator, with an SSH key' in r.stdout and 'recorded in principal_changes' in r.stdout
    r = shell('user', 'roles', 'vic', '--role', 'auditor')
    assert 'vic now has the roles auditor' in r.stdout
    r = shell('user', 'add', 'vic', '--role', 'auditor', '--role', 'validator', '--keep-password')
    assert 'changed vic' in r.stdout and P.login('vic', PASSWORD, path=f).roles == ('auditor', 'validator')
    listed = shell('user', 'list').stdout
    assert 'vic' in listed and 'auditor, validator' in listed and 'ssh-ed25519' in listed
    assert 'scrypt' not in listed and PASSWORD not in listed
    for args, message in [(['user', 'add', 'bob', '--role', 'admin', '--password-stdin'], 'unknown role admin'),
                          (['user', 'add', 'bob', '--password-stdin'], 'needs at least one --role'),
                          (['user', 'add', 'bob', '--role', 'developer', '--password-stdin'], 'at least 8 characters'),
                          (['user', 'add', 'bob', '--role', 'developer', '--ssh-key', 'none.pub', '--password-stdin'], 'no SSH public key file'),
                          (['user', 'roles', 'bob', '--role', 'developer'], "no person 'bob'"),
                          (['user', 'remove', 'bob'], "no person or client 'bob'")]:
        r = shell(*args, input='short\n', check=False)
        assert r.returncode == 1 and message in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr)
    assert 'removed the person ana' in shell('user', 'remove', 'ana').stdout
    changes = Store(tmp_path / 'store').sql('select name, kind, change, roles_json, actor from principal_changes order by created_at')
    assert [tuple(x) for x in changes[['name', 'change', 'roles_json']].itertuples(index=False)] == [
        ('ana', 'added', '["developer", "operator"]'), ('vic', 'roles', '["auditor"]'), ('vic', 'roles', '["auditor", "validator"]'),
        ('ana', 'removed', '[]')]
    assert set(changes.actor) == {os.environ.get('USER') or __import__('getpass').getuser()}


def test_service_token_round_trip(shell, tmp_path):
    shell('status')
    r = shell('service-token', 'scorer', '--scope', 'predict', '--scope', 'outcomes')
    token = next(w for w in r.stdout.split() if w.startswith('wp_'))
    assert f'Authorization: Bearer {token}' in r.stdout and 'shown this once' in r.stdout
    f = tmp_path / 'people.json'
    assert token not in f.read_text()
    checker = P.TokenChecker(f, reload_seconds=0.2)
    assert checker.check(token).scopes == ('predict', 'outcomes')
    assert 'scorer' in shell('user', 'list').stdout and token not in shell('user', 'list').stdout
    r = shell('service-token', 'scorer', '--scope', 'predict', check=False)
    assert r.returncode == 1 and 'to rotate its token, add a new client' in r.stderr
    assert shell('service-token', 'other', check=False).stderr.count('needs at least one --scope') == 1
    r = shell('service-token', 'scorer', '--revoke')
    assert 'refuses it within [access] token_reload_seconds (5 s)' in r.stdout
    time.sleep(0.25)
    assert checker.check(token) is None
    changes = Store(tmp_path / 'store').sql('select name, kind, change, roles_json from principal_changes order by created_at')
    assert [tuple(x) for x in changes.itertuples(index=False)] == [('scorer', 'client', 'token_created', '["outcomes", "predict"]'),
                                                                   ('scorer', 'client', 'token_revoked', '[]')]


def test_a_governance_command_authenticates_who_acts(shell, tmp_path):
    "alerts ack as a stand-in for every command that records who acts: --as NAME and the password, and the rule's roles."
    team(tmp_path / 'people.json')
    shell('status')
    r = shell('alerts', 'ack', 'abc', check=False)
    assert r.returncode == 1 and 'records who acts: name yourself with --as NAME' in r.stderr
    r = shell('alerts', 'ack', 'abc', *as_('ops'), input='not the password\n', check=False)
    assert r.returncode == 1 and "cannot act as 'ops': wrong password" in r.stderr and 'Traceback' not in r.stderr
    r = shell('alerts', 'ack', 'abc', *as_('dev'), input=PASSWORD + '\n', check=False)
    assert r.returncode == 1 and r.stderr.strip().endswith('dev may not do this: [access] alert_roles needs operator; dev has developer')
    r = shell('alerts', 'ack', 'abc', *as_('ops'), input=PASSWORD + '\n', check=False)   # authenticated and allowed: on to the alert
    assert r.returncode == 1 and 'abc' in r.stderr and 'may not' not in r.stderr and 'cannot act' not in r.stderr
    r = shell('alerts', 'ack', 'abc', '--by', 'ops', check=False)
    assert r.returncode == 1 and 'not a typed --by name' in r.stderr
    r = shell('report', 'monitoring', 'window=2025-04-10', *as_('sam'), input=PASSWORD + '\n', check=False)
    assert r.returncode == 1 and 'sam may not do this: [access] report_roles needs developer or validator or auditor or operator' in r.stderr
    r = shell('retrain', '--model', 'm', '--force', check=False)
    assert r.returncode == 1 and '--as NAME' in r.stderr


def test_the_team_helper_has_one_person_per_role(tmp_path):
    f = team(tmp_path / 'p.json')
    assert {p['name']: tuple(p['roles']) for p in P.list_principals(f)} == TEAM
    assert set(P.ROLES) == {r for rs in TEAM.values() for r in rs}


def test_the_dashboards_log_in_the_people_of_the_principals_file(shell, tmp_path):
    "`wildproof dashboards` with a login: any person of the principals file logs in with their password, a client or a wrong password does not."
    import signal, socket
    import httpx
    team(tmp_path / 'people.json')
    P.add_client(tmp_path / 'people.json', 'scorer', ['predict'])
    shell('status')
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    p = subprocess.Popen([str(Path(sys.executable).parent / 'wildproof'), 'dashboards', '--port', str(port)], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        t = time.time()
        while True:
            assert p.poll() is None, p.stdout.read()
            assert time.time() - t < 120, 'the dashboards did not answer within 120 s'
            try: httpx.get(f'http://127.0.0.1:{port}/login', timeout=5); break
            except httpx.HTTPError: time.sleep(0.5)

        def logs_in(name, password):
            with httpx.Client(base_url=f'http://127.0.0.1:{port}', timeout=60, follow_redirects=False) as c:
                c.get('/login')
                r = c.post('/login', data={'username': name, 'password': password})
                return r.status_code == 302 and 'error' not in r.headers['location'] and 'user' in c.cookies
        assert logs_in('sam', PASSWORD) and logs_in('val', PASSWORD)
        assert not logs_in('sam', 'not the password') and not logs_in('scorer', PASSWORD) and not logs_in('nobody', PASSWORD)
        P.remove(tmp_path / 'people.json', 'val')                                 # read at each login: no restart
        assert not logs_in('val', PASSWORD)
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try: p.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()
