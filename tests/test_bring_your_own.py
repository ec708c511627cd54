"""Bring your own fitted model (issue 18, item 3): a pipeline fitted here, with a custom transformer from a module of the
test's own and a LightGBM classifier (its scikit-learn API), registered with `register_model` and served by `wildproof serve`
in a fresh process that has never seen the module: MLflow's `code_paths` bring it. The answers over HTTP equal the
in-process `predict_proba` to 1e-12. A user's feature module named in the spec travels the same way.

The user's code lives in a folder of its own (never the server's working directory, never on its PYTHONPATH).
"""
import json, os, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_serving import Server, report
from wildproof.contracts import infer_contract
from wildproof.datasets import ingest
from wildproof.features import build_features, feature_set
from wildproof.registry import _move, alias_version
from wildproof.settings import load_settings
from wildproof.spec import init_spec
from wildproof.store import Store
from wildproof.training import TrainingError, model_version, register_model

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'car_loan'

TRANSFORMERS = '''
"""A data scientist's own transformers."""
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class Log1p(TransformerMixin, BaseEstimator):
    "log(1 + x) of non-negative numbers (negative ones are clipped to 0)."
    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.log1p(np.clip(np.asarray(X, dtype=float), 0, None))

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f'log1p_{c}' for c in input_features], dtype=object)


class Ratio(TransformerMixin, BaseEstimator):
    "The first column over (offset + the second), kept alongside them."
    def __init__(self, offset=1.0):
        self.offset = offset

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        a = np.asarray(X, dtype=float)
        return np.column_stack([a, a[:, 0] / (self.offset + np.abs(a[:, 1]))])
'''

FEATURES = '''
"""A data scientist's own row features."""
import numpy as np
import pandas as pd


def build(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({'x_squared': df['x'].astype(float) ** 2, 'is_red': (df['colour'] == 'red').astype(float)}, index=df.index)
'''


@pytest.fixture
def usercode(tmp_path_factory, monkeypatch) -> Path:
    "The user's modules in a folder of their own, importable in this process only (not through PYTHONPATH)."
    d = tmp_path_factory.mktemp('usercode')
    (d / 'my_transformers.py').write_text(TRANSFORMERS, encoding='utf-8')
    (d / 'my_features.py').write_text(FEATURES, encoding='utf-8')
    monkeypatch.syspath_prepend(str(d))
    for m in ('my_transformers', 'my_features'): monkeypatch.delitem(sys.modules, m, raising=False)
    yield d
    for m in ('my_transformers', 'my_features'): sys.modules.pop(m, None)


def serve_and_score(settings_file: Path, usercode: Path, model: str, records: list[dict], capsys, batch: int = 500) -> tuple[np.ndarray, dict]:
    "Start `wildproof serve` in a fresh process away from the user's code, score `records` over HTTP: (scores, /version)."
    assert Path(settings_file.parent).resolve() != usercode.resolve()
    assert str(usercode) not in os.environ.get('PYTHONPATH', '')
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    probe = subprocess.run([sys.executable, '-c', 'import my_transformers'], cwd=settings_file.parent, env={**env, 'PYTHONPATH': ''},
                           capture_output=True, text=True)
    assert probe.returncode != 0 and 'No module named' in probe.stderr   # only the packaged copy can bring it
    text = settings_file.read_text(encoding='utf-8')
    if '[serving]' not in text: settings_file.write_text(text + f'\n[serving]\nmodel = {model}\n', encoding='utf-8')
    t0 = time.perf_counter()
    with Server(settings_file, model=model, PYTHONPATH='') as srv:
        started = time.perf_counter() - t0
        version = srv.version()
        scores = []
        for i in range(0, len(records), batch):
            r = srv.client.post('/predict', json=records[i:i + batch])
            assert r.status_code == 200, r.text[:2000]
            scores += [p['score'] for p in r.json()['predictions']]
        out = srv.output
    assert 'cannot be loaded' not in out, out[-3000:]
    report(capsys, f'{model}: fresh `wildproof serve` answered /version {started:.1f} s after its start; {len(records):,} records scored over HTTP')
    return np.asarray(scores, float), version


def records_of(df: pd.DataFrame) -> list[dict]:
    "The rows as a client sends them, numbers exact (pandas' to_json keeps only 10 digits), times in ISO format."
    df = df.copy()
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]): df[c] = df[c].map(lambda t: t.isoformat() if pd.notna(t) else None)
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in df.astype(object).to_dict(orient='records')]


def logged_model_dir(store: Store, model: str, version: str) -> Path:
    import mlflow
    from wildproof.training import mlflow_setup
    mlflow_setup(store)
    return Path(mlflow.artifacts.download_artifacts(f'models:/{model}/{version}'))


# ------------------------------------------------------------------------------------------ car loan: LightGBM with Log1p

@pytest.mark.timeout(600)
def test_lightgbm_pipeline_with_custom_transformer_served_fresh(settings_file, usercode, capsys):
    if not (DATA / 'reference.csv').is_file() or not (DATA / 'analysis.csv').is_file():
        pytest.skip(f'the car loan data set is not at {DATA}')
    import lightgbm as lgb   # the dev extra installs it: a missing install fails here rather than skipping
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder
    from my_transformers import Log1p

    settings = load_settings()
    store = Store(settings_file.parent / 'store')
    snap = ingest(store, 'car_loan_ref', DATA / 'reference.csv')
    contract = infer_contract(store, snap, name='car_loan', key='id', time_column='timestamp',
                              exclude=['repaid', 'y_pred', 'y_pred_proba'], settings=settings).register(store)
    spec = init_spec(store, 'car_loan', contract='car_loan', target='repaid', task='binary', positive=1).register(store)

    # the data scientist's notebook: the spec's features, their own preprocessing, LightGBM
    reference = pd.read_csv(DATA / 'reference.csv', parse_dates=['timestamp'])
    fs = feature_set(spec, contract)
    X = build_features(reference, fs)
    logged = ['car_value', 'driver_tenure']
    pipe = Pipeline([
        ('prep', ColumnTransformer([('log', Log1p(), logged),
                                    ('cat', OrdinalEncoder(handle_unknown='use_encoded_value', unknown_value=-1), fs.categorical)],
                                   remainder='passthrough')),
        ('model', lgb.LGBMClassifier(n_estimators=150, num_leaves=15, learning_rate=0.05, random_state=0, n_jobs=1, verbose=-1)),
    ]).fit(X, reference.repaid.astype(int))

    # a custom type nobody vouched for is refused, with the way out
    with pytest.raises(TrainingError, match=r'my_transformers\.Log1p.*trusted_types'):
        register_model(store, pipe, model='car_loan', snapshot=snap, settings=settings)

    t0 = time.perf_counter()
    res = register_model(store, pipe, model='car_loan', snapshot=snap, trusted_types=['my_transformers.Log1p'], settings=settings)
    registered = time.perf_counter() - t0
    assert (res.version, res.lineage['wildproof.how']) == ('1', 'registered')
    assert res.metrics['train_roc_auc'] > 0.8, res.metrics

    # the logged model: pinned lightgbm, and the custom module packaged as code
    d = logged_model_dir(store, 'car_loan', '1')
    reqs = (d / 'requirements.txt').read_text().split()
    assert f'lightgbm=={lgb.__version__}' in reqs and any(r.startswith('scikit-learn==') for r in reqs), reqs
    assert (d / 'code' / 'my_transformers.py').is_file(), sorted(p.name for p in d.rglob('*'))

    _move(store, 'car_loan', 'production', '1', 'promote', 'test')
    assert alias_version(store, 'car_loan', 'production') == '1'

    analysis = pd.read_csv(DATA / 'analysis.csv', parse_dates=['timestamp']).head(2000)
    rows = analysis.drop(columns=['repaid', 'y_pred', 'y_pred_proba'], errors='ignore')
    expected = pipe.predict_proba(build_features(rows, fs))[:, list(pipe.classes_).index(1)]
    got, version = serve_and_score(settings_file, usercode, 'car_loan', records_of(rows), capsys)
    assert version['routes']['champion']['version'] == '1' and version['routes']['champion']['available']
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    report(capsys, f'car_loan LightGBM + Log1p: register_model {registered:.2f} s (50,000 rows); max |HTTP - predict_proba| '
                   f'{np.abs(got - expected).max():.1e} over {len(got):,} rows; requirements {" ".join(reqs)}')


# ------------------------------------------------------------------------------------------ synthetic: feature module + Ratio

def toy(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({'id': np.arange(n), 'at': pd.Timestamp('2024-01-01') + pd.to_timedelta(np.arange(n), 'min'),
                      'x': rng.normal(size=n), 'z': rng.uniform(0, 10, n), 'colour': rng.choice(['red', 'green', 'blue'], n)})
    logit = 1.5 * f.x - 0.2 * f.z + (f.colour == 'red') * 1.0 + 0.5 * f.x ** 2 - 1
    f['outcome'] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), 'bad', 'good')
    return f


@pytest.mark.timeout(600)
def test_feature_module_and_custom_transformer_served_fresh(settings_file, usercode, capsys):
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from my_transformers import Ratio

    settings = load_settings()
    store = Store(settings_file.parent / 'store')
    ref, later = toy(4000), toy(1500, seed=1).assign(id=lambda f: f.id + 4000)
    snap = ingest(store, 'toy_reference', ref)
    contract = infer_contract(store, snap, name='toy', key='id', time_column='at', exclude=['outcome'], settings=settings).register(store)
    spec = init_spec(store, 'toy_risk', contract='toy', target='outcome', task='binary', positive='bad',
                     features='my_features:build').register(store)
    fs = feature_set(spec, contract, ref)
    assert fs.code == 'my_features:build' and fs.row == ['x_squared', 'is_red']
    X = build_features(ref, fs)
    pipe = make_pipeline(make_column_transformer((Ratio(offset=2.0), ['x', 'z']), (OneHotEncoder(handle_unknown='ignore'), ['colour']),
                                                 remainder='passthrough'),
                         LogisticRegression(max_iter=1000)).fit(X, ref.outcome)

    with pytest.raises(TrainingError, match=r'my_transformers\.Ratio.*trusted_types'):
        register_model(store, pipe, model='toy_risk', snapshot=snap, settings=settings)
    res = register_model(store, pipe, model='toy_risk', snapshot=snap, trusted_types=['my_transformers.Ratio'], settings=settings)
    d = logged_model_dir(store, 'toy_risk', res.version)
    assert {'my_features.py', 'my_transformers.py'} <= {p.name for p in (d / 'code').iterdir()}
    _move(store, 'toy_risk', 'production', res.version, 'promote', 'test')

    rows = later.drop(columns=['outcome'])
    expected = pipe.predict_proba(build_features(rows, fs))[:, list(pipe.classes_).index('bad')]
    np.testing.assert_allclose(model_version(store, 'toy_risk', res.version).scores(build_features(rows, fs)), expected, rtol=0, atol=1e-12)
    got, version = serve_and_score(settings_file, usercode, 'toy_risk', records_of(rows), capsys)
    assert version['model'] == 'toy_risk' and version['routes']['champion']['available']
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)

    # a fresh process that computes the version's features without loading the model (monitoring, evaluation) finds the module too
    script = (f"from wildproof.store import Store; from wildproof.training import model_version; from wildproof.features import build_features\n"
              f"import pandas as pd\nmv = model_version(Store({str(store.root)!r}), 'toy_risk', {res.version!r})\n"
              f"X = build_features(pd.read_json({str(settings_file.parent / 'rows.json')!r}, orient='records', convert_dates=['at']), mv.features)\n"
              f"print(X[['x_squared', 'is_red']].sum().round(6).to_dict())")
    rows.head(50).to_json(settings_file.parent / 'rows.json', orient='records', date_format='iso', double_precision=15)
    env = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    r = subprocess.run([sys.executable, '-c', script], cwd=settings_file.parent, env={**env, 'PYTHONPATH': '', 'WILDPROOF_SETTINGS': str(settings_file)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    want = build_features(rows.head(50), fs)[['x_squared', 'is_red']].sum().round(6).to_dict()
    assert eval(r.stdout.strip().splitlines()[-1]) == pytest.approx(want), (r.stdout, want)


def test_notebook_class_is_refused_with_the_fix():
    "A transformer defined in the notebook itself (module __main__) cannot be packaged: refused with the way out, vouched for or not."
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from wildproof.training import _trusted

    class Here(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None): return self
        def transform(self, X): return X
    Here.__module__, Here.__qualname__ = '__main__', 'Here'
    pipe = make_pipeline(Here(), LogisticRegression())
    for vouched in ((), ('__main__.Here',)):
        with pytest.raises(TrainingError, match=r'__main__\.Here.*defined in the notebook itself.*module file'):
            _trusted(pipe, vouched)
