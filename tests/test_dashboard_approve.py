"""Approving from the model-card dashboard as a logged-in approver (issue 21): `wildproof dashboards` with its login over a real
store and MLflow registry holding a registered, gated version, driven in Chromium; refusals shown as the registry words them."""
import os, signal, subprocess, sys, time
from pathlib import Path

import httpx
import pytest

from tests.browser import chromium, free_port, log_in, screenshot
from tests.worlds import credit_world
from wildproof import principals, registry
from wildproof.dashboards import DashboardData, DashboardError, ModelCardDashboard, session_user
from wildproof.datasets import ingest
from wildproof.settings import WildproofError, load_settings
from wildproof.store import Store

EXE = Path(sys.executable).parent / 'wildproof'
PASSWORD = {'vic': 'validator passphrase', 'sam': 'stakeholder passphrase', 'devi': 'developer passphrase'}


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """A store with the credit model's version 1, trained by devi (a developer who also holds the validator role), evaluated and
    gated on the low tier; principals: vic (validator and business owner), sam (stakeholder), devi. Settings in a file of their own."""
    root = tmp_path_factory.mktemp('approve')
    people = root / 'principals.json'
    principals.add_person(people, 'vic', PASSWORD['vic'], ['validator', 'business_owner'])
    principals.add_person(people, 'sam', PASSWORD['sam'], ['stakeholder'])
    principals.add_person(people, 'devi', PASSWORD['devi'], ['developer', 'validator'])
    principals.add_person(people, 'rita', 'a validator for now', ['validator'])
    principals.add_person(people, 'guest', 'a validator named guest', ['validator'])   # the name Panel gives anyone with its guest cookie
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(root / 'bea_key')], check=True)
    principals.add_person(people, 'bea', 'a business owner passphrase', ['business_owner'], ssh_key=(root / 'bea_key.pub').read_text())   # signs from the shell
    ini = root / 'settings.ini'
    ini.write_text(f'[store]\nroot = {root / "store"}\n[access]\nprincipals_file = {people}\n'
                   f'[dashboard]\nauth = basic\ncookie_secret = {"c" * 48}\n[reports]\nlog_to_mlflow = false\n', encoding='utf-8')
    settings = load_settings(ini, env={})
    store = Store(root / 'store')
    _, rest, snap, spec = credit_world(store, rows=10_000, seed=11)
    from wildproof.training import train
    v = train(store, snap, spec, settings=settings, author=principals.logged_in('devi', settings=settings)).version
    registry.describe_model(store, spec.model, owner='bea', intended_use='rank loan applications', risk_tier='low',
                            principal=principals.logged_in('devi', settings=settings), settings=settings)
    ev = registry.evaluate_version(store, spec.model, v, ingest(store, 'later', rest), settings=settings, measure_cost=False)
    registry.gate(store, spec.model, v, ev, settings=settings)
    return dict(root=root, ini=ini, settings=settings, store=store, model=spec.model, version=str(v), people=people)


@pytest.fixture(scope='module')
def served(world):
    "`wildproof dashboards` (the basic-auth login over the principals file) on a free port; yields its base URL."
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    env.update(WILDPROOF_SETTINGS=str(world['ini']), MLFLOW_DISABLE_TELEMETRY='true')
    p = subprocess.Popen([str(EXE), 'dashboards', '--port', str(port)], cwd=world['root'], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        t = time.time()
        while True:
            if p.poll() is not None: pytest.fail('the dashboards exited: ' + p.stdout.read()[-3000:])
            try:
                httpx.get(f'http://127.0.0.1:{port}/', timeout=5)
                break
            except httpx.HTTPError:
                if time.time() - t > 120: pytest.fail('the dashboards did not answer within 120 s')
                time.sleep(0.5)
        yield f'http://127.0.0.1:{port}'
    finally:
        try: os.killpg(p.pid, signal.SIGTERM); p.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired): os.killpg(p.pid, signal.SIGKILL)


def on_record(world):
    return registry.approvals(world['store'], world['model'], world['version'])


def test_no_login_or_no_approving_role_no_control_and_refused_anyway(world):
    "The component the server runs: without a login (auth = none) or with a stakeholder's, no approve control, and its action is refused."
    data = DashboardData(world['store'].root, settings=world['settings'])
    assert session_user() is None                                     # outside a served session nobody is logged in
    anon = ModelCardDashboard(data, user=None)
    assert anon.signs() == [] and anon._approve_controls() is None
    with pytest.raises(DashboardError, match='approving needs a login'): anon.approve('technical')
    sam = ModelCardDashboard(data, user='sam')
    assert sam.signs() == [] and sam._approve_controls() is None and 'Approve v' not in str(sam.panel())
    with pytest.raises(WildproofError) as e: sam.approve('technical', 'reached the handler anyway')
    assert 'validator' in str(e.value), e.value                          # the refusal names the missing role
    nobody = ModelCardDashboard(data, user='mallory')                     # a name the principals file does not know
    assert nobody.signs() == [] and nobody._approve_controls() is None
    with pytest.raises(WildproofError): nobody.approve('technical')
    assert not len(on_record(world))
    # a role removed after the page was drawn: the click is refused (the roles are re-read from the principals file)
    rita = ModelCardDashboard(data, user='rita')
    assert rita.signs() == ['technical'] and rita._approve_controls() is not None
    principals.set_roles(world['people'], 'rita', ['stakeholder'])
    with pytest.raises(WildproofError, match='rita has stakeholder'): rita.approve('technical')
    assert not len(on_record(world))
    vic = ModelCardDashboard(data, user='vic')
    assert vic.model == world['model'] and vic.version == world['version'] and vic.signs() == ['technical', 'business']


@pytest.mark.timeout(420)
def test_in_chromium_the_author_is_refused_a_validator_approves_a_stakeholder_only_reads(world, served, tmp_path):
    url, v = served, world['version']
    with chromium(tmp_path, timeout_ms=90_000) as browser:
        # the version's author, though a validator: refused, with the registry's reason verbatim, and nothing recorded
        page = browser.new_page()
        log_in(page, url + '/model_card', 'devi', PASSWORD['devi'])
        page.get_by_text(f'Approve v{v} as technical').wait_for()
        assert page.get_by_text(f'Approve v{v} as business').count() == 0   # devi holds no business_owner role
        page.get_by_role('button', name=f'Approve v{v} as technical').click()
        page.get_by_text('Refused:').wait_for()
        with pytest.raises(WildproofError) as e:
            registry.approve(world['store'], world['model'], v, principal=principals.logged_in('devi', settings=world['settings']), role='technical',
                             settings=world['settings'])
        assert page.get_by_text(f'Refused: {e.value}').count() == 1, (str(e.value), page.get_by_text('Refused:').inner_text())
        assert 'author' in str(e.value)
        screenshot(page, 'dashboard_approve_author_refused')
        assert not len(on_record(world))
        page.goto(url + '/logout')
        page.get_by_text('Successfully logged out').wait_for()

        # a validator approves with a note: the page shows it on record (re-read from the store), and so does the store
        log_in(page, url + '/model_card', 'vic', PASSWORD['vic'])
        page.get_by_text(f'No approval of {world["model"]} v{v} on record.').wait_for()
        page.get_by_placeholder('why, on what evidence').fill('validated on the later months')
        page.get_by_role('button', name=f'Approve v{v} as technical').click()
        page.get_by_text(f'vic approved {world["model"]} v{v} as technical').wait_for()
        a = on_record(world)
        assert (a.approver.tolist(), a.role.tolist(), a.note.tolist()) == (['vic'], ['technical'], ['validated on the later months'])
        page.get_by_text('vic (technical)').first.wait_for()                 # the inventory, re-read
        page.get_by_text('validated on the later months').first.wait_for()   # the approvals on record, with the note
        # the same person in a second approval role: refused, the reason shown
        page.get_by_role('button', name=f'Approve v{v} as business').click()
        page.get_by_text('Refused:').wait_for()
        refusal = page.get_by_text('Refused:').inner_text()
        assert 'vic' in refusal, refusal
        assert len(on_record(world)) == 1
        screenshot(page, 'dashboard_approve_validator')
        page.goto(url + '/logout')
        page.get_by_text('Successfully logged out').wait_for()

        # a stakeholder sees the approval on record and no control to approve
        log_in(page, url + '/model_card', 'sam', PASSWORD['sam'])
        page.get_by_text('validated on the later months').first.wait_for()
        page.get_by_text('Reports').first.wait_for()
        assert page.get_by_text('Approve v').count() == 0 and page.get_by_role('button', name='Approve', exact=False).count() == 0
        screenshot(page, 'dashboard_approve_stakeholder')
        # a business approval signed from the library (as `wildproof approve --sign-with` does): shown with its signature verified.
        # And Panel names any session with its guest cookie "guest" (pn.state.user), a cookie the browser sets itself: it never
        # stands for the person of that name (a validator here)
        registry.approve(world['store'], world['model'], v, principal=principals.logged_in('bea', settings=world['settings']), role='business',
                         sign_with=world['root'] / 'bea_key', settings=world['settings'])
        browser.add_cookies([dict(name='is_guest', value='1', url=url)])
        page.reload()
        page.get_by_text('vic (technical), bea (business)').first.wait_for()   # the inventory, in the order given
        page.get_by_text('verified', exact=True).wait_for()
        page.get_by_text('unsigned', exact=True).wait_for()                   # vic's, from the dashboard
        page.get_by_text('Reports').first.wait_for()
        assert page.get_by_text('Approve v').count() == 0 and page.get_by_text('Logged in as').count() == 0
        screenshot(page, 'dashboard_approve_signed')
    assert on_record(world).approver.tolist() == ['vic', 'bea']
    # the dashboard's approval is on the chained governance record like any other, and the signed one verifies
    from wildproof import governance
    r = governance.verify(world['store'], settings=world['settings'])
    assert r.ok, r
