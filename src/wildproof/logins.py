"""Passwords as wildproof keeps them: scrypt hashes, never the passwords; and the dashboards' users file of before issue 21.

`hash_password` and `check_password` are what `wildproof.principals` (the people, their roles and the service clients)
keeps and checks. `read_users`, `set_user` and `check_login` still read and write a users file of the old format, a JSON
object of user names and scrypt hashes (`wildproof.principals` reads such a file as people with the role stakeholder). A
users file that holds a password in plain text is refused with the command that stores it hashed. Stdlib only: the CLI
imports this without the dashboards' libraries.
"""
from __future__ import annotations

import base64, hashlib, hmac, json, os, secrets
from pathlib import Path

from .settings import WildproofError

SCRYPT = dict(n=2 ** 14, r=8, p=1)   # 16 MiB and about 40 ms a check here: cheap for one login, costly for guessing
_PREFIX = 'scrypt'


class LoginError(WildproofError):
    "The users file cannot be read or written as asked."


def _b64(b: bytes) -> str: return base64.b64encode(b).decode()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    "`password` as the users file keeps it: `scrypt:n:r:p:salt:key` (salt and key in base64), with a random salt."
    if not isinstance(password, str) or len(password) < 8: raise LoginError('a password needs at least 8 characters')
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return ':'.join([_PREFIX, str(SCRYPT['n']), str(SCRYPT['r']), str(SCRYPT['p']), _b64(salt), _b64(key)])


def _parts(stored) -> tuple[dict, bytes, bytes] | None:
    "The parameters, salt and key of a stored hash, or None if `stored` is not one."
    p = stored.split(':') if isinstance(stored, str) else []
    if len(p) != 6 or p[0] != _PREFIX: return None
    try: return dict(n=int(p[1]), r=int(p[2]), p=int(p[3])), base64.b64decode(p[4], validate=True), base64.b64decode(p[5], validate=True)
    except ValueError: return None


def check_password(stored: str, password: str) -> bool:
    "Whether `password` hashes to `stored` (compared in constant time)."
    parts = _parts(stored)
    if parts is None or not isinstance(password, str): return False
    params, salt, key = parts
    try: got = hashlib.scrypt(password.encode(), salt=salt, dklen=len(key), maxmem=2 ** 26, **params)
    except ValueError: return False   # parameters beyond what a check may cost
    return hmac.compare_digest(got, key)


def read_users(path) -> dict[str, str]:
    "The users of the file at `path`: name -> stored hash. A missing file, bad JSON or a password not stored hashed is a `LoginError`."
    path = Path(path)
    if not path.is_file():
        raise LoginError(f'no dashboard users file at {path}: add a user with `wildproof dashboard-user NAME` (it asks for the password)')
    try: users = json.loads(path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as e: raise LoginError(f'{path} is not JSON ({e}): rewrite it with `wildproof dashboard-user NAME`') from None
    if not isinstance(users, dict): raise LoginError(f'{path} must be a JSON object of user names and password hashes')
    plain = sorted(str(k) for k, v in users.items() if _parts(v) is None)
    if plain:
        raise LoginError(f'{path} holds the password of {", ".join(plain)} in plain text (or not as wildproof hashes it): store each '
                         f'hashed with `wildproof dashboard-user NAME` (it asks for the password), then serve again')
    return users


def check_login(path, username: str, password: str) -> bool:
    "Whether `username` may log in with `password` by the users file at `path` (read at each login: a change needs no restart)."
    try: users = read_users(path)
    except LoginError: return False
    stored = users.get(username)
    if stored is None:
        check_password(_DUMMY, password)   # as long as for a known user: the answer's time does not tell who exists
        return False
    return check_password(stored, password)


_DUMMY = 'scrypt:16384:8:1:' + _b64(b'\0' * 16) + ':' + _b64(b'\0' * 32)


def set_user(path, name: str, password: str | None) -> bool:
    "Add `name` with `password`, change its password, or (`password=None`) remove it; returns whether the user existed. The file is readable by its owner only."
    if not isinstance(name, str) or not name.strip() or name != name.strip() or ':' in name:
        raise LoginError(f'user name {name!r}: needs a name without surrounding blanks or ":"')
    path = Path(path)
    users = read_users(path) if path.exists() else {}
    existed = name in users
    if password is None:
        if not existed: raise LoginError(f'no user {name!r} in {path}')
        del users[name]
    else: users[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{secrets.token_hex(4)}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as f: f.write(json.dumps(users, indent=1, sort_keys=True) + '\n')
    os.replace(tmp, path)
    return existed


def loose_permissions(path) -> bool:
    "Whether others than the owner may read the users file."
    return bool(Path(path).stat().st_mode & 0o077)
