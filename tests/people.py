"""A team of people for tests that act from the shell: one person per role, all with one known password.

`team(path)` writes them into a principals file (once; scrypt hashing costs about 40 ms a person); `as_(name)` is the
arguments that make a command act as that person, whose password goes to its standard input (`input=PASSWORD + '\\n'`).
Point a command at the file with `env={'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(path)}`."""
import tempfile
from functools import lru_cache
from pathlib import Path

from wildproof import principals

PASSWORD = 'a long test passphrase'
TEAM = {'dev': ('developer',), 'val': ('validator',), 'biz': ('business_owner',), 'aud': ('auditor',), 'ops': ('operator',),
        'sam': ('stakeholder',)}


def team(path) -> Path:
    "The principals file at `path` with the TEAM (added when missing), each person's password PASSWORD."
    path = Path(path)
    have = {p['name'] for p in principals.list_principals(path)}
    for name, roles in TEAM.items():
        if name not in have: principals.add_person(path, name, PASSWORD, roles)
    return path


@lru_cache(maxsize=None)
def shared_team() -> Path:
    "A TEAM file for this test process, in a folder of its own."
    return team(Path(tempfile.mkdtemp(prefix='wildproof-team-')) / 'principals.json')


def as_(name: str) -> list[str]:
    "The arguments of a command acting as `name`, its password read from standard input."
    return ['--as', name, '--password-stdin']


def team_env() -> dict:
    "The environment that points a command at the shared team."
    return {'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(shared_team())}
