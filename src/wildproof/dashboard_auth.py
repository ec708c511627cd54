"""The dashboards' login, loaded by `panel serve --auth-module` (see `wildproof dashboards`): Panel's own login and logout
pages and signed cookies, with the password checked against the scrypt hashes of the users file
(`WILDPROOF_DASHBOARD_USERS_FILE`, set by `wildproof dashboards`) instead of Panel's plain-text comparison."""
import os

from panel.auth import BasicAuthProvider

from wildproof.logins import check_login

USERS_FILE = os.environ.get('WILDPROOF_DASHBOARD_USERS_FILE')   # no file: nobody logs in

_panel = BasicAuthProvider()
get_user, login_url, logout_url, LogoutHandler = _panel.get_user, _panel.login_url, _panel.logout_url, _panel.logout_handler


class LoginHandler(_panel.login_handler):
    def _validate(self, username, password):
        return bool(USERS_FILE) and check_login(USERS_FILE, username, password)
