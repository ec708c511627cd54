"""The dashboards' login, loaded by `panel serve --auth-module` (see `wildproof dashboards`): any person of the principals file, by their password.

Panel's own login and logout pages and signed cookies, with the password checked against the scrypt hashes of the people
in the principals file (`WILDPROOF_ACCESS_PRINCIPALS_FILE`, set by `wildproof dashboards`; a dashboards users file of the
old format is read too) instead of Panel's plain-text comparison. What a person may do there follows their roles
(`wildproof.principals.logged_in(name)` gives the logged-in person's `Principal`)."""
import os

from panel.auth import BasicAuthProvider

from wildproof.principals import AccessError, login

PRINCIPALS_FILE = os.environ.get('WILDPROOF_ACCESS_PRINCIPALS_FILE')   # no file: nobody logs in

_panel = BasicAuthProvider()
get_user, login_url, logout_url, LogoutHandler = _panel.get_user, _panel.login_url, _panel.logout_url, _panel.logout_handler


def check(username: str, password: str) -> bool:
    "Whether `username` may log in with `password` (the file is read at each login: a change needs no restart)."
    if not PRINCIPALS_FILE or not isinstance(username, str) or not isinstance(password, str): return False
    try: login(username, password, path=PRINCIPALS_FILE)
    except AccessError: return False
    return True


class LoginHandler(_panel.login_handler):
    def _validate(self, username, password):
        return check(username, password)
