"""Dashboards: component state on the default demo's store, read-only, and the served apps (HTTP, auth, under writes)."""
import hashlib, json, os, signal, subprocess, sys, threading, time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from wildproof.dashboards import DashboardData, DashboardError, DriftDashboard, ModelCardDashboard
from wildproof.logins import set_user
from wildproof.store import StoreError

EXE = Path(sys.executable).parent / 'wildproof'


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob('*')):
        if p.is_file(): h.update(str(p.relative_to(root)).encode()); h.update(p.read_bytes())
    return h.hexdigest()


def test_drift_component_defaults_to_the_worst_drift_and_follows_its_selectors(demo_copy):
    d = DriftDashboard(DashboardData(demo_copy))
    assert d.model == 'credit_risk' and d.granularity == 'month'
    assert (d.start, d.end) == ('2024-07', '2025-12')
    assert d.feature == 'income' and d.window >= '2025-04'                    # the recession's income drift is the worst
    m = d._metrics()
    assert set(m.window_start.dt.strftime('%Y-%m')) == set(d.param.start.objects)
    d.start, d.end = '2025-03', '2025-05'
    m = d._metrics()
    assert sorted(m.window_start.dt.strftime('%Y-%m').unique()) == ['2025-03', '2025-04', '2025-05']
    psi = m[(m.family == 'data_drift') & (m.metric == 'psi') & (m.subject == 'income')]
    psi = psi.set_index(psi.window_start.dt.strftime('%Y-%m')).value
    assert psi['2025-03'] < 0.1 < 0.2 < psi['2025-04']
    # every view renders, and the views drawn from the metrics share one query per selection
    queries, metrics = [], d.data.metrics
    d.data.metrics = lambda *a, **k: queries.append(a) or metrics(*a, **k)
    d.start = '2025-02'
    for view in (d.heatmap, d.distribution, d.service, d.business, d.performance, d.alerts): assert view() is not None
    assert len(queries) == 1 and sorted(d._metrics().window_start.dt.strftime('%Y-%m').unique()) == ['2025-02', '2025-03', '2025-04', '2025-05']
    d.data.metrics = metrics
    # the distribution shows the reference against the chosen window
    dist = d.data.distribution('credit_risk', 'income', pd.Timestamp('2025-05-01', tz='UTC'), pd.Timestamp('2025-06-01', tz='UTC'))
    assert abs(dist.reference.sum() - 1) < 1e-9 and abs(dist.current.sum() - 1) < 1e-9
    assert dist.current.iloc[:3].sum() > dist.reference.iloc[:3].sum() + 0.1   # incomes fell: more mass in the low bins
    alerts = d.alerts().object
    assert 'data_drift.psi' in alerts and 'reports/monitoring/credit_risk/v1/2025-04/monitoring.html' in alerts
    # in JupyterLab a cell's value is rendered through pn.panel: the same layout the server sends
    import panel as pn
    layout = pn.panel(d)
    assert isinstance(layout, pn.Row) and 'wildproof: drift' in str(layout.objects[0].objects[0].object)
    assert isinstance(pn.panel(ModelCardDashboard(d.data)), pn.Row)


def test_selectors_take_only_what_the_store_offers(demo_copy):
    d = DriftDashboard(DashboardData(demo_copy))
    for p, bad in [('model', "x'; drop table metrics; --"), ('start', '1999-01'), ('feature', 'income; select 1'), ('granularity', 'hour')]:
        with pytest.raises(ValueError): setattr(d, p, bad)
    mc = ModelCardDashboard(DashboardData(demo_copy))
    with pytest.raises(ValueError): mc.version = '99'


def test_model_card_component_shows_inventory_card_and_reports(demo_copy):
    mc = ModelCardDashboard(DashboardData(demo_copy))
    inv = mc.data.inventory()
    assert {'1', '2', '3'} <= set(inv.version) and (inv.stage.str.contains('production')).sum() == 1
    prod = inv[inv.stage.str.contains('production')].iloc[0]
    assert mc.version == prod.version and 'promote' in prod.production and prod.approvals
    assert 'ROC AUC' in mc.card().object and 'tara' in mc.card().object
    mc.kind = 'monitoring'
    html = mc.reports().object
    assert html.count('monitoring.html') >= 12
    mc.kind = 'validation'
    assert 'rejected' in mc.reports().object


def test_the_dashboards_cannot_change_the_store(demo_copy):
    before = tree_hash(demo_copy)
    data = DashboardData(demo_copy)
    d, mc = DriftDashboard(data), ModelCardDashboard(data)
    for w in d.param.window.objects[:3]:
        d.window = w
        d.distribution(); d.heatmap()
    mc.card(); mc.reports(); mc.inventory()
    with pytest.raises(StoreError, match='read-only'): data.store.append('events', [])
    with pytest.raises(DashboardError, match='no wildproof store'): DashboardData(demo_copy.parent / 'nothing-here')
    assert tree_hash(demo_copy) == before


@pytest.fixture
def served(demo_copy, tmp_path):
    "`wildproof dashboards` on a free port over a copy of the demo store; yields (base url, process, settings env)."
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    users = tmp_path / 'users.json'
    set_user(users, 'ana', 'correct horse battery')
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    env.update(WILDPROOF_ACCESS_PRINCIPALS_FILE=str(users), WILDPROOF_DASHBOARD_COOKIE_SECRET='test-secret-' + 'x' * 20)

    def start(*extra):
        p = subprocess.Popen([str(EXE), '--store', str(demo_copy), 'dashboards', '--port', str(port), *extra], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        t = time.time()
        while time.time() - t < 120:
            if p.poll() is not None: pytest.fail('the dashboards exited: ' + p.stdout.read()[-3000:])
            try:
                httpx.get(f'http://127.0.0.1:{port}/', timeout=5)
                return p
            except httpx.HTTPError: time.sleep(0.5)
        pytest.fail('the dashboards did not answer within 120 s')
    procs = []
    yield lambda *extra: (procs.append(start(*extra)) or (f'http://127.0.0.1:{port}', procs[-1]))
    for p in procs:
        try: os.killpg(p.pid, signal.SIGTERM); p.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired): os.killpg(p.pid, signal.SIGKILL)


def test_served_without_login_only_on_request(served):
    url, _ = served('--no-auth')
    for app, title in (('drift', 'wildproof: drift'), ('model_card', 'wildproof: models')):
        r = httpx.get(f'{url}/{app}', timeout=60)
        assert r.status_code == 200 and f'<title>{title}</title>' in r.text
    r = httpx.get(f'{url}/reports/monitoring/credit_risk/v1/2025-04/monitoring.html', timeout=30)
    assert r.status_code == 200 and 'Monitoring report' in r.text


def test_with_basic_auth_nothing_but_the_login_page_is_served(served, tmp_path):
    url, _ = served()
    for path in ('/drift', '/model_card', '/reports/monitoring/credit_risk/v1/2025-04/monitoring.html'):
        r = httpx.get(url + path, timeout=30, follow_redirects=False)
        assert r.status_code in (302, 303, 401, 403), (path, r.status_code)
        assert 'wildproof' not in r.text and 'Monitoring report' not in r.text
    login = httpx.get(url + '/login', timeout=30)
    assert login.status_code == 200 and 'password' in login.text.lower()
    # a wrong password stays at the login page; the right one gets the app
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as c:
        c.get('/login')
        bad = c.post('/login', data={'username': 'ana', 'password': 'wrong'})
        assert '<title>wildproof: drift</title>' not in bad.text
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as c:
        c.get('/login')
        ok = c.post('/login', data={'username': 'ana', 'password': 'correct horse battery'})
        assert ok.status_code == 200
        assert '<title>wildproof: drift</title>' in c.get('/drift').text
    # a user added while the dashboards run logs in at once; the users file holds a hash, not the password
    users = tmp_path / 'users.json'
    r = subprocess.run([str(EXE), 'dashboard-user', 'ben', '--password-stdin'], input='a second long passphrase\n', text=True, capture_output=True,
                       env={**os.environ, 'WILDPROOF_ACCESS_PRINCIPALS_FILE': str(users)})
    assert r.returncode == 0 and 'added ben' in r.stdout, r.stderr
    assert 'a second long passphrase' not in users.read_text() and 'correct horse' not in users.read_text()
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as c:
        c.get('/login')
        c.post('/login', data={'username': 'ben', 'password': 'a second long passphrase'})
        assert '<title>wildproof: drift</title>' in c.get('/drift').text


def test_pages_keep_loading_while_monitoring_writes(served, demo_copy):
    "Page loads (each runs the app over the store) while another process recomputes monitoring windows: no failed load."
    url, _ = served('--no-auth')
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    stop, writes, errors = threading.Event(), [], []

    def writer():
        months = ['2025-0%d-10' % m for m in range(1, 10)]
        i = 0
        while not stop.is_set():
            r = subprocess.run([str(EXE), '--store', str(demo_copy), 'monitor', '--every', 'month', '--window', months[i % len(months)],
                                '--as-of', '2027-01-01'], env=env, capture_output=True, text=True, timeout=300)
            writes.append(r.returncode)
            if r.returncode: errors.append(r.stderr[-500:])
            i += 1
    t = threading.Thread(target=writer); t.start()
    loads = []
    try:
        t0 = time.time()
        while time.time() - t0 < 45 or len(writes) < 2:
            for app in ('drift', 'model_card'):
                r = httpx.get(f'{url}/{app}', timeout=60)
                loads.append((app, r.status_code, 'Traceback' in r.text or 'Error' in r.text.split('<body', 1)[-1][:2000]))
            if time.time() - t0 > 240: break
    finally:
        stop.set(); t.join(timeout=300)
    assert not errors, errors
    assert len(writes) >= 2 and len(loads) >= 10
    assert all(code == 200 and not bad for _, code, bad in loads), [l for l in loads if l[1] != 200 or l[2]]


@pytest.mark.timeout(300)
def test_in_chromium_log_in_select_a_window_see_the_heatmap_and_the_card_log_out(served, tmp_path):
    from tests.browser import chromium, log_in, screenshot
    url, _ = served()
    with chromium(tmp_path, timeout_ms=60_000) as browser:
        page = browser.new_page()
        log_in(page, url + '/drift', 'ana', 'correct horse battery')
        page.get_by_text('Data and prediction drift').wait_for()
        page.locator('img').first.wait_for()                                  # the PSI heatmap first, then the other charts
        t = time.time()
        while page.locator('img').count() < 5 and time.time() - t < 60: page.wait_for_timeout(100)
        assert page.locator('img').count() >= 5
        page.get_by_text('data_drift.psi').first.wait_for()                   # the alert history
        screenshot(page, 'dashboards_drift')
        # choose the window whose distribution is shown: the chart changes
        selects = page.locator('select')
        window = selects.nth(6)
        assert '2025-04' in window.inner_text()
        srcs = lambda: {i.get_attribute('src') for i in page.locator('img').all()}
        before = srcs()
        window.select_option('2024-08')
        t = time.time()
        while not srcs() - before and time.time() - t < 60: page.wait_for_timeout(250)
        assert srcs() - before, 'the distribution did not change with the window'
        screenshot(page, 'dashboards_drift_2024_08')
        # the model card and the inventory
        page.goto(url + '/model_card')
        page.get_by_text('Inventory').first.wait_for()
        page.get_by_text('ROC AUC').first.wait_for()
        page.get_by_text('tara (technical)').first.wait_for()
        screenshot(page, 'dashboards_model_card')
        page.goto(url + '/logout')
        page.get_by_text('Successfully logged out').wait_for()
        page.goto(url + '/model_card')
        assert '/login' in page.url


def test_what_if_moves_the_bands_without_changing_anything(demo_copy):
    from wildproof.dashboards import DriftWhatIf, what_if
    before = tree_hash(demo_copy)
    data = DashboardData(demo_copy)
    m = data.metrics('credit_risk', 'month')
    now = what_if(m, 0.1, 0.2)
    stored = m[(m.metric == 'psi') & (m.status == 'alert')].groupby('window_start').size()
    assert now.set_index('window_start').alerts[stored.index].tolist() == stored.tolist()   # the settings' bands: what monitoring judged
    lax, strict = what_if(m, 0.2, 0.5), what_if(m, 0.02, 0.05)
    assert lax.alerts.sum() == 0 < now.alerts.sum() < strict.alerts.sum()
    assert what_if(m, 0.02, 0.05, noise=False).alerts.sum() >= strict.alerts.sum()   # without the noise band, never fewer alerts
    assert 'income' in now.set_index(now.window_start.dt.strftime('%Y-%m')).alert['2025-04']
    with pytest.raises(DashboardError): what_if(m, 0.3, 0.2)
    w = DriftWhatIf(data)
    w.watch.value, w.alert.value = 0.02, 0.05
    assert w.out.value.startswith(f'{strict.alerts.sum()} alerts over {len(strict)} windows')
    w.watch.value, w.alert.value = 0.3, 0.2
    assert 'must satisfy' in w.out.value
    assert tree_hash(demo_copy) == before
