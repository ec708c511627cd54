"""Who may do what: people with roles and service clients with scopes, in one JSON file, `[access] principals_file`.

The people have a scrypt hash of their password, their roles and optionally an SSH public key for signed approvals; the
service clients the SHA-256 of their bearer token and their scopes. The file is written whole and readable by its owner only.

The boundaries that authenticate are the CLI (`--as NAME` and a password), the dashboards' login and the REST service's
bearer tokens; `login` and `logged_in` give a `Principal` carrying a proof (an HMAC of its name by the file's secret), and
`require` checks that proof and re-reads the roles from the file, so a role removed takes effect at once. The library
trusts its caller as any library does: whoever can read the principals file can forge a proof. A file holding a secret in
plain text is refused. A dashboards users file of the old format (`{name: scrypt hash}`) is read too, each user a
stakeholder; the first change rewrites it in the new format. Stdlib only: the CLI imports this without heavy libraries.
"""
from __future__ import annotations

import base64, binascii, contextlib, fcntl, hashlib, hmac, json, os, re, secrets, threading, time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .logins import LoginError, _DUMMY, _parts, check_password, hash_password
from .settings import ROLES

SCOPES = ('predict', 'outcomes', 'admin')   # admin implies the others
KINDS = ('person', 'client')
TOKEN_PREFIX = 'wp_'
_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._@-]{0,63}')
_SSH_TYPES = ('ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
              'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com')
_EPHEMERAL = secrets.token_bytes(32)   # signs proofs from a file of the old format, which has no secret: valid in this process only


class AccessError(LoginError):
    "Who is asking could not be authenticated, or may not do what is asked; or the principals file cannot be read or written as asked."


@dataclass(frozen=True)
class Principal:
    "An authenticated person (with roles) or service client (with scopes); `proof` shows it was authenticated against its file."
    name: str
    kind: str
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    proof: str = field(default='', repr=False, compare=False)

    def holds(self, *wanted: str) -> bool:
        "Whether it holds one of the roles (a person) or scopes (a client; admin holds every scope) `wanted`."
        have = set(self.roles) if self.kind == 'person' else set(SCOPES if 'admin' in self.scopes else self.scopes)
        return bool(have & set(wanted))


def _now() -> str: return datetime.now(timezone.utc).isoformat(timespec='seconds')


def principals_file(settings=None) -> Path:
    "The principals file of `settings` (default: the loaded settings), `[access] principals_file`."
    if settings is None:
        from .settings import load_settings
        settings = load_settings()
    return Path(settings.access.principals_file)


def _path(path, settings) -> Path: return Path(path) if path is not None else principals_file(settings)


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AccessError(f'principal name {name!r}: needs 1 to 64 letters, digits or ._@- (starting with a letter or digit)')
    return name


def _check_list(values, known, what) -> list[str]:
    vals = list(dict.fromkeys(str(v).strip().lower() for v in ([values] if isinstance(values, str) else values or ()) if str(v).strip()))
    bad = [v for v in vals if v not in known]
    if bad: raise AccessError(f'unknown {what} {", ".join(bad)} ({what}s: {", ".join(known)})')
    if not vals: raise AccessError(f'name at least one {what} ({what}s: {", ".join(known)})')
    return vals


def check_ssh_key(key: str) -> str:
    "`key` (an OpenSSH public key line: type, base64 blob, optional comment) as one line, or an `AccessError` saying what is wrong."
    parts = key.strip().split() if isinstance(key, str) else []
    if len(parts) < 2 or parts[0] not in _SSH_TYPES or '\n' in key.strip():
        raise AccessError(f'not an SSH public key (expected one line "TYPE BASE64 [comment]", TYPE one of {", ".join(_SSH_TYPES)}): '
                          f'give the .pub file, never the private key')
    try: blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError): raise AccessError('the SSH public key is not base64 after its type') from None
    n = int.from_bytes(blob[:4], 'big') if len(blob) >= 4 else -1
    if blob[4:4 + n].decode('latin-1') != parts[0]: raise AccessError(f'the SSH public key blob is not a {parts[0]} key')
    return ' '.join(parts[:3])


def _token_hash(token: str) -> str: return 'sha256:' + hashlib.sha256(token.encode()).hexdigest()


def _valid_token_hash(v) -> bool: return isinstance(v, str) and re.fullmatch(r'sha256:[0-9a-f]{64}', v) is not None


def _empty() -> dict: return {'version': 1, 'secret': base64.b64encode(secrets.token_bytes(32)).decode(), 'people': {}, 'clients': {}}


def _parse(path: Path, text: str) -> dict:
    "The file's content in the current format (an old dashboards users file converted, without a secret), or an `AccessError`."
    fix = 'store each hashed with `wildproof user add NAME --role ...` (it asks for the password) or `wildproof service-token NAME --scope ...`'
    try: data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e: raise AccessError(f'{path} is not JSON ({e}): {fix}') from None
    if not isinstance(data, dict): raise AccessError(f'{path} must be a JSON object (the principals file: version, secret, people, clients)')
    if 'version' not in data:   # the dashboards' users file: {name: scrypt hash}
        plain = sorted(str(k) for k, v in data.items() if _parts(v) is None)
        if plain: raise AccessError(f'{path} holds the password of {", ".join(plain)} in plain text (or not as wildproof hashes it): {fix}, then try again')
        return {'version': 1, 'secret': None, 'people': {k: {'password': v, 'roles': ['stakeholder']} for k, v in data.items()}, 'clients': {}}
    if data.get('version') != 1: raise AccessError(f'{path} is a principals file of version {data.get("version")!r}; this wildproof reads version 1')
    people, clients = data.get('people', {}), data.get('clients', {})
    if not isinstance(people, dict) or not isinstance(clients, dict) or not isinstance(data.get('secret'), str):
        raise AccessError(f'{path}: people and clients must be JSON objects and secret a string')
    plain = sorted(k for k, v in people.items() if not isinstance(v, dict) or _parts(v.get('password')) is None)
    plain += sorted(k for k, v in clients.items() if not isinstance(v, dict) or not _valid_token_hash(v.get('token')))
    if plain: raise AccessError(f'{path} holds the secret of {", ".join(plain)} in plain text (or not as wildproof hashes it): {fix}, then try again')
    return data


def _read(path: Path, *, missing_ok: bool = False) -> dict:
    if not path.is_file():
        if missing_ok: return _empty()
        raise AccessError(f'no principals file at {path}: add a person with `wildproof user add NAME --role ROLE` ([access] principals_file)')
    return _parse(path, path.read_text(encoding='utf-8'))


def _secret(data: dict) -> bytes: return base64.b64decode(data['secret']) if data.get('secret') else _EPHEMERAL


def _proof(data: dict, kind: str, name: str) -> str:
    return hmac.new(_secret(data), f'{kind}:{name}'.encode(), hashlib.sha256).hexdigest()


def _write(path: Path, data: dict) -> None:
    if not data.get('secret'): data['secret'] = _empty()['secret']   # an old users file: from now on in the current format
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{secrets.token_hex(4)}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + '\n'); f.flush(); os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _changing(path: Path):
    "The file's content to change, written back (0600, atomically) when the block ends without error; one writer at a time."
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f'.{path.name}.lock'), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = _read(path, missing_ok=True)
        yield data
        _write(path, data)
    finally: os.close(fd)


def _record(store, name: str, kind: str, change: str, values, actor: str | None) -> None:
    "A row in the store's `principal_changes` (on the chained governance record), when a store is given and has that table."
    if store is None: return
    from .store import TABLES
    if 'principal_changes' not in TABLES: return
    import getpass
    store.append('principal_changes', [dict(name=name, kind=kind, change=change, roles_json=json.dumps(sorted(values)),
                                            actor=actor or getpass.getuser(), created_at=datetime.now(timezone.utc))])


def add_person(path, name: str, password: str | None, roles, *, ssh_key: str | None = None, store=None, actor: str | None = None) -> bool:
    """Add the person `name` with `password` (at least 8 characters), `roles` and optionally an SSH public key; or, when `name`
    exists, replace its roles and (when given) password and key. Returns whether it existed. With `store`, the change is
    recorded in its `principal_changes` as done by `actor`."""
    _check_name(name)
    roles = _check_list(roles, ROLES, 'role')
    key = check_ssh_key(ssh_key) if ssh_key else None
    pw = hash_password(password) if password is not None else None
    path = Path(path)
    with _changing(path) as data:
        if name in data['clients']: raise AccessError(f'{name!r} is a service client in {path}: a person needs another name')
        old = data['people'].get(name)
        if old is None and pw is None: raise AccessError(f'adding {name!r}: a new person needs a password')
        person = dict(old or {'created_at': _now()}, roles=roles)
        if pw: person['password'] = pw
        if key: person['ssh_key'] = key
        data['people'][name] = person
    if old is None: _record(store, name, 'person', 'added', roles, actor)
    else:
        if sorted(old.get('roles', [])) != sorted(roles): _record(store, name, 'person', 'roles', roles, actor)
        if pw: _record(store, name, 'person', 'password', roles, actor)
    return old is not None


def set_roles(path, name: str, roles, *, store=None, actor: str | None = None) -> None:
    "Replace the roles of the person `name` (it takes effect at once: `require` re-reads them)."
    roles = _check_list(roles, ROLES, 'role')
    path = Path(path)
    with _changing(path) as data:
        if name not in data['people']: raise AccessError(f'no person {name!r} in {path} (`wildproof user list` shows who is)')
        data['people'][name]['roles'] = roles
    _record(store, name, 'person', 'roles', roles, actor)


def remove(path, name: str, *, store=None, actor: str | None = None) -> str:
    "Remove the person or client `name`; returns its kind."
    path = Path(path)
    with _changing(path) as data:
        kind = 'person' if name in data['people'] else 'client' if name in data['clients'] else None
        if kind is None: raise AccessError(f'no person or client {name!r} in {path} (`wildproof user list` shows who is)')
        del data['people' if kind == 'person' else 'clients'][name]
    _record(store, name, kind, 'removed', [], actor)
    return kind


def list_principals(path, *, missing_ok: bool = True) -> list[dict]:
    """Every person and client: name, kind, roles or scopes, SSH public key (people; empty if none), created_at; never a secret.
    A missing file has none (an `AccessError` unless `missing_ok`)."""
    path = Path(path)
    data = _read(path, missing_ok=missing_ok)
    out = [dict(name=k, kind='person', roles=list(v.get('roles', [])), ssh_key=v.get('ssh_key', ''), created_at=v.get('created_at', ''))
           for k, v in sorted(data['people'].items())]
    return out + [dict(name=k, kind='client', scopes=list(v.get('scopes', [])), created_at=v.get('created_at', ''))
                  for k, v in sorted(data['clients'].items())]


def ssh_key(path, name: str) -> str | None:
    "The SSH public key of the person `name`, or None."
    return _read(Path(path), missing_ok=True)['people'].get(name, {}).get('ssh_key')


def _person(data: dict, name: str) -> Principal:
    p = data['people'][name]
    return Principal(name, 'person', roles=tuple(p.get('roles', ())), proof=_proof(data, 'person', name))


def login(name: str, password: str | None = None, *, settings=None, path=None) -> Principal:
    "The person `name`, authenticated by `password` (asked with getpass when None); a wrong password or unknown name is an `AccessError`."
    path = _path(path, settings)
    data = _read(path)
    if password is None:
        import getpass
        password = getpass.getpass(f'password for {name}: ')
    person = data['people'].get(name)
    if person is None:
        check_password(_DUMMY, password)   # as long as for a known person
        who = 'a service client, which authenticates by its token' if name in data['clients'] else 'not in it'
        raise AccessError(f'cannot act as {name!r}: {who} ({path}; `wildproof user list` shows who is)')
    if not check_password(person['password'], password):
        raise AccessError(f'cannot act as {name!r}: wrong password (nobody acts as another without their password)')
    return _person(data, name)


def logged_in(name: str, *, settings=None, path=None) -> Principal:
    "The person `name` as a server that has already checked their password sees them (the dashboards)."
    path = _path(path, settings)
    data = _read(path)
    if name not in data['people']: raise AccessError(f'no person {name!r} in {path}')
    return _person(data, name)


def require(principal: Principal, *roles: str, rule: str | None = None, settings=None, path=None) -> Principal:
    """`principal` as the file holds it now (its roles or scopes re-read), after checking it was authenticated against that file
    and still exists; with `roles`, it must hold one of them. A role may also be named by its action in `[access]` (`'promote'`
    stands for `[access] promote_roles`, and names that rule when refused); `rule` names the rule otherwise."""
    path = _path(path, settings)
    if not isinstance(principal, Principal): raise AccessError(f'{principal!r} is not an authenticated principal: log in first (--as NAME)')
    wanted, rules = [], []
    for r in roles:
        if r in ROLES or r in SCOPES: wanted.append(r); continue
        st = settings
        if st is None:
            from .settings import load_settings
            st = load_settings()
        if f'{r}_roles' not in st.access:
            raise AccessError(f'unknown role or action {r!r} (roles: {", ".join(ROLES)}; scopes: {", ".join(SCOPES)}; actions: '
                              f'{", ".join(k[:-6] for k in st.access if k.endswith("_roles"))})')
        wanted += st.access[f'{r}_roles']; rules.append(f'[access] {r}_roles')
    data = _read(path)
    if not hmac.compare_digest(principal.proof or '', _proof(data, principal.kind, principal.name)):
        raise AccessError(f'{principal.name!r} was not authenticated against {path}: log in with --as NAME and the password')
    book = data['people'] if principal.kind == 'person' else data['clients']
    if principal.name not in book: raise AccessError(f'{principal.name!r} is no longer in {path}')
    entry = book[principal.name]
    now = (Principal(principal.name, 'person', roles=tuple(entry.get('roles', ())), proof=principal.proof) if principal.kind == 'person'
           else Principal(principal.name, 'client', scopes=tuple(entry.get('scopes', ())), proof=principal.proof))
    if wanted and not now.holds(*wanted):
        what = 'roles' if now.kind == 'person' else 'scopes'
        because = rule or ' and '.join(rules) or 'this action'
        raise AccessError(f'{now.name} may not do this: {because} needs {" or ".join(dict.fromkeys(wanted))}; '
                          f'{now.name} has {", ".join(getattr(now, what)) or f"no {what}"}')
    return now


def add_client(path, name: str, scopes, *, store=None, actor: str | None = None) -> str:
    "Add the service client `name` with `scopes`; returns its bearer token, shown this once (only its SHA-256 is kept)."
    _check_name(name)
    scopes = _check_list(scopes, SCOPES, 'scope')
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    path = Path(path)
    with _changing(path) as data:
        if name in data['people']: raise AccessError(f'{name!r} is a person in {path}: a service client needs another name')
        if name in data['clients']:
            raise AccessError(f'service client {name!r} exists: to rotate its token, add a new client, deploy its token, then '
                              f'`wildproof service-token {name} --revoke`')
        data['clients'][name] = dict(token=_token_hash(token), scopes=scopes, created_at=_now())
    _record(store, name, 'client', 'token_created', scopes, actor)
    return token


def revoke_client(path, name: str, *, store=None, actor: str | None = None) -> None:
    "Remove the service client `name`: its token is refused by every `TokenChecker` within its reload interval."
    path = Path(path)
    with _changing(path) as data:
        if name not in data['clients']: raise AccessError(f'no service client {name!r} in {path} (`wildproof user list` shows the clients)')
        del data['clients'][name]
    _record(store, name, 'client', 'token_revoked', [], actor)


class TokenChecker:
    """Bearer tokens against the clients of the principals file at `path`. The file is re-read when it changed, looked at
    no more often than every `reload_seconds`: a revoked token is refused within that. A missing or unreadable file
    leaves no client (every token refused; `error` says why)."""
    def __init__(self, path, reload_seconds: float = 5):
        self.path, self.reload_seconds = Path(path), float(reload_seconds)
        self._clients: dict[str, Principal] = {}
        self._stamp, self._checked, self.error = None, float('-inf'), None
        self._lock = threading.Lock()
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.reload_seconds: return
        with self._lock:
            if not force and now - self._checked < self.reload_seconds: return
            self._checked = now
            try: st = os.stat(self.path); stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError: stamp = None
            if stamp == self._stamp and not force: return
            try:
                data = _read(self.path)
                clients = {v['token']: Principal(k, 'client', scopes=tuple(v.get('scopes', ())), proof=_proof(data, 'client', k))
                           for k, v in data['clients'].items()}
                self.error = None
            except (AccessError, OSError) as e: clients, self.error = {}, str(e)
            self._clients, self._stamp = clients, stamp

    def check(self, token) -> Principal | None:
        "The client whose token `token` is, or None (unknown, revoked or malformed)."
        self._reload()
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200: return None
        return self._clients.get(_token_hash(token))
