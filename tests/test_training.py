"""Training against a real MLflow SQLite store: reproducibility and loading in a fresh process."""
import json, subprocess, sys, textwrap

import numpy as np
import pytest

from wildproof.datasets import ingest
from wildproof.features import build_features
from wildproof.training import TrainingError, train
from tests.worlds import credit_world


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from wildproof.store import Store
    root = tmp_path_factory.mktemp('train')
    store = Store(root / 'store')
    ref, later, snap, spec = credit_world(store, rows=10_000, seed=3, contract='apps', model='m', reference='ref')
    return store, snap, spec, ref, later, train(store, snap, spec)


def test_same_snapshot_and_code_give_identical_predictions(trained):
    store, snap, spec, ref, later, first = trained
    second = train(store, snap, spec, register=False)
    X = build_features(later, first.features, history=ref)
    assert np.array_equal(first.model.predict_proba(X), second.model.predict_proba(X))


def test_loaded_in_a_fresh_process_predicts_identically(trained, tmp_path):
    store, snap, spec, ref, later, first = trained
    X = build_features(later.head(500), first.features, history=ref)
    X.to_parquet(tmp_path / 'X.parquet')
    expected = first.model.predict_proba(X)[:, 1]
    script = textwrap.dedent(f'''
        import json, pandas as pd
        from wildproof.store import Store
        from wildproof.training import load_model
        model, fs = load_model(Store({str(store.root)!r}), {first.model_uri!r})
        X = pd.read_parquet({str(tmp_path / 'X.parquet')!r})
        print(json.dumps(dict(p=model.predict_proba(X[fs.columns])[:, 1].tolist(), columns=fs.columns)))
    ''')
    r = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['columns'] == first.features.columns
    assert np.array_equal(np.array(out['p']), expected)


def test_training_on_a_batch_that_fails_its_contract_is_refused(trained):
    store, snap, spec, ref, later, first = trained
    broken = ref.drop(columns=['income'])
    with pytest.raises(TrainingError, match='missing column income'):
        train(store, ingest(store, 'ref', broken), spec)


def test_lineage_is_in_the_registry(trained):
    import mlflow
    store, snap, spec, ref, later, first = trained
    mv = mlflow.MlflowClient().get_model_version('m', first.version)
    assert mv.tags['wildproof.content_hash'] == snap.content_hash
    assert mv.tags['wildproof.contract'] == 'apps v1' and mv.tags['wildproof.spec'] == f'm v{spec.version}'
    assert mv.tags['wildproof.code.commit']
    reqs = mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path='model/requirements.txt')
    pins = open(reqs).read().split()
    assert any(p.startswith('scikit-learn==') for p in pins) and all('==' in p for p in pins)
