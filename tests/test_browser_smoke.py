"""Smoke tests of the browser-test infrastructure (tests/browser.py): a trivial Panel app served by `panel serve`, seen in Chromium."""
import json

import httpx
import pytest

from tests.browser import chromium, log_in, screenshot, serve_panel

APP = '''import panel as pn
pn.extension()
pn.Column('# Hello dashboards', pn.widgets.Select(name='Model', options=['a', 'b'])).servable(title='Hello dashboards')
'''


@pytest.fixture
def app(tmp_path):
    f = tmp_path / 'hello.py'
    f.write_text(APP, encoding='utf-8')
    return f


@pytest.mark.timeout(60)
def test_page_shows_title(app, tmp_path):
    with serve_panel([app], extra_args=['--warm']) as url, chromium(tmp_path) as browser:
        page = browser.new_page()
        page.goto(url + '/hello')
        page.get_by_text('Hello dashboards').wait_for()   # in Panel's shadow DOM
        assert page.title() == 'Hello dashboards'
        assert screenshot(page, 'browser_smoke_hello').stat().st_size > 0


@pytest.mark.timeout(60)
def test_basic_auth_login_and_logout(app, tmp_path):
    users = tmp_path / 'users.json'
    users.write_text(json.dumps({'alice': 'wonderland'}), encoding='utf-8')
    with serve_panel([app], extra_args=['--basic-auth', users, '--cookie-secret', 'test-secret', '--warm']) as url:
        r = httpx.get(url + '/hello', follow_redirects=False, timeout=10)
        assert r.status_code == 302 and 'login' in r.headers['location'] and 'Hello dashboards' not in r.text
        with chromium(tmp_path) as browser:
            page = browser.new_page()
            log_in(page, url + '/hello', 'alice', 'wonderland')
            page.get_by_text('Hello dashboards').wait_for()
            assert page.url == url + '/hello'
            screenshot(page, 'browser_smoke_logged_in')
            page.goto(url + '/logout')
            page.get_by_text('Successfully logged out').wait_for()
            page.goto(url + '/hello')
            assert '/login' in page.url
            page.locator('input[name=password]').wait_for()
            assert page.get_by_text('Hello dashboards').count() == 0
