"""The online path answers as the batch path does (issue 20): for the same record and model version, the same score to
1e-12, the same decision, route and version, whether the requests come one at a time or eight at once (then the service
scores them together), in one worker process or two. On the demo world, with a challenger taking a canary share and
shadowing the rest, and on the car-loan data set of a deployed model (NannyML's synthetic car loans), from the shell."""
import json, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.test_cli import run
from tests.test_serving import ENV, Server
from tests.worlds import credit_world
from wildproof.datasets import ingest
from wildproof.examples.credit import world
from wildproof.registry import _move
from wildproof.scoring import score_snapshot
from wildproof.settings import load_settings
from wildproof.store import Store
from wildproof.training import mlflow_release, train

CAR_LOAN = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'car_loan'


def answers(srv: Server, records: list[dict], clients: int) -> list[dict]:
    "Each record POSTed alone, by `clients` clients at once (each its own keep-alive connection)."
    local = threading.local()
    def one(r):
        if not hasattr(local, 'c'): local.c = httpx.Client(base_url=srv.url, timeout=30, headers=srv.headers)
        res = local.c.post('/predict', json=r)
        assert res.status_code == 200, res.text[:1000]
        return res.json()['predictions'][0]
    with ThreadPoolExecutor(clients) as ex: return list(ex.map(one, records))


def same_as_batch(got: list[dict], batch: pd.DataFrame):
    "Every online answer equals the batch answer for its key: score to 1e-12, decision, route, version."
    b = batch.set_index('entity_key').loc[[a['entity_key'] for a in got]]
    np.testing.assert_allclose([a['score'] for a in got], b.score.to_numpy(), rtol=0, atol=1e-12)
    for col in ('decision', 'route', 'version'): assert [a[col] for a in got] == b[col].tolist(), col


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    "A small demo world: v1 production, v2 staging taking a 30% canary and shadowing the rest; 400 later applications scored in batch."
    d = tmp_path_factory.mktemp('online_demo')
    settings_file = d / 'settings.ini'
    settings_file.write_text(f'[store]\nroot = {d / "store"}\n[serving]\ncanary_share = 0.3\nshadow = true\n', encoding='utf-8')
    settings = load_settings(settings_file, env={})
    store = Store(d / 'store')
    _, rest, ref, spec = credit_world(store, rows=12_000, seed=5)
    v1 = train(store, ref, spec, settings=settings)
    v2 = train(store, ref, spec, settings=settings, params=dict(max_leaf_nodes=7), seed=1)
    _move(store, 'credit_risk', 'production', v1.version, 'promote', 'test')
    _move(store, 'credit_risk', 'staging', v2.version, 'promote', 'test')
    later = rest.drop(columns=[world.target, world.outcome_time_column]).head(400).reset_index(drop=True)
    res = score_snapshot(store, ingest(store, 'loan_applications', later).snapshot_id, model='credit_risk', settings=settings, progress=False)
    mlflow_release(store, settings)
    records = json.loads(later.to_json(orient='records', date_format='iso'))
    return settings_file, records, pd.read_parquet(res.scores_file)


@pytest.mark.parametrize('workers', [1, 2])
def test_the_demo_world_online_as_in_batch(demo, workers):
    settings_file, records, batch = demo
    assert set(batch.route) == {'champion', 'canary'}   # both versions answer
    with Server(settings_file, model='credit_risk', workers=workers) as srv:
        got = answers(srv, records, 8)
    same_as_batch(got, batch)


@pytest.mark.skipif(not (CAR_LOAN / 'reference.csv').is_file(), reason=f'the car loan data set is not at {CAR_LOAN}')
def test_the_car_loans_online_as_in_batch(tmp_path):
    work = tmp_path
    wp = lambda *a: run('--store', work / 'store', *a, cwd=work, env=ENV)
    a = pd.read_csv(CAR_LOAN / 'analysis.csv').head(300).drop(columns=['y_pred', 'y_pred_proba'])
    a.to_csv(work / 'batch.csv', index=False)
    wp('ingest', 'car_loan_ref', CAR_LOAN / 'reference.csv')
    wp('contract', 'infer', 'car_loan_ref@latest', '--name', 'car_loan', '--key', 'id', '--time-column', 'timestamp', '--exclude', 'repaid', 'y_pred', 'y_pred_proba')
    wp('model', 'init', 'car_loan', '--contract', 'car_loan', '--target', 'repaid', '--task', 'binary', '--positive', '1')
    wp('train', 'car_loan_ref@latest', '--model', 'car_loan')
    store = Store(work / 'store')
    _move(store, 'car_loan', 'production', '1', 'promote', 'test')
    wp('ingest', 'car_loan_batch', work / 'batch.csv')
    out = wp('score', 'car_loan_batch@latest', '--model', 'car_loan').stdout
    batch = pd.read_parquet(out.rsplit('-> ', 1)[1].strip())
    settings_file = work / 'settings.ini'
    settings_file.write_text(f'[store]\nroot = {work / "store"}\n', encoding='utf-8')
    records = json.loads(a.to_json(orient='records'))
    with Server(settings_file, model='car_loan', workers=2) as srv:
        got = answers(srv, records, 8)
    same_as_batch(got, batch)
    assert 'chain intact' in wp('audit', 'verify').stdout
