"""The compiled form of a model version (wildproof.compiled) answers exactly as its pipeline does: models trained with
`make_pipeline` on the demo world and on the shared data sets (car loans: binary, used-car prices: regression, credit-card
products: 3 classes), on 1 row, 8 rows and every row, with missing values, unknown and infrequent categories mixed in."""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline as sk_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from wildproof.compiled import compile_model
from wildproof.contracts import infer_contract
from wildproof.datasets import ingest, read_snapshot
from wildproof.examples.credit import world
from wildproof.examples.credit.features import credit_spec
from wildproof.features import build_features, feature_set
from wildproof.settings import load_settings
from wildproof.spec import init_spec
from wildproof.store import Store
from wildproof.training import labels, make_pipeline, scores

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
SHARED = {   # name: (task, folder, reference, analysis, columns that are logged predictions, not inputs)
    'car_loan': ('binary', 'car_loan', 'reference.csv', 'analysis.csv', 'repaid', ['y_pred_proba', 'y_pred']),
    'car_price': ('regression', 'car_price', 'regression_synthetic_reference.csv', 'regression_synthetic_analysis.csv', 'y_true', ['y_pred']),
    'card_product': ('multiclass', 'multiclass', 'mc_reference.csv', 'mc_analysis.csv', 'y_true',
                     ['y_pred', 'y_pred_proba_prepaid_card', 'y_pred_proba_highstreet_card', 'y_pred_proba_upmarket_card']),
}
RARE = 'a category seen 5 times'   # put into the training data, under make_pipeline's min_frequency (20): infrequent


def _store(tmp_path_factory, name):
    store = Store(tmp_path_factory.mktemp(name) / 'store')
    f = store.root.parent / 'settings.ini'   # module fixtures run before the per-test settings fixture
    f.write_text(f'[store]\nroot = {store.root}\n', encoding='utf-8')
    return store, load_settings(f, env={})


def _with_rare(train: pd.DataFrame, column: str) -> pd.DataFrame:
    "The training rows with 5 of them in a category of their own, which the encoder learns as infrequent."
    out = train.copy()
    out.loc[out.index[:5], column] = RARE
    return out


def _odd(X: pd.DataFrame, fs) -> pd.DataFrame:
    "The first 64 rows of `X` with missing numbers, missing categories (None and NaN), unknown and infrequent ones."
    odd = X.head(64).copy()
    num, cat = fs.numeric[0], fs.categorical[0]
    odd[num] = odd[num].astype(float)
    odd.loc[odd.index[0:8], num] = np.nan
    odd.loc[odd.index[8:12], cat] = None
    odd.loc[odd.index[12:16], cat] = np.nan
    odd.loc[odd.index[16:24], cat] = 'a category never seen'
    odd.loc[odd.index[24:32], cat] = RARE
    odd.loc[odd.index[32:36], fs.categorical[-1]] = 'another one never seen'
    return odd


def _check(pipe, spec, fs, X):
    "Compile with a sample, then compare with the pipeline on 1, 8, 64 odd and every row, through each of the compiled paths."
    cm = compile_model(pipe, spec, fs, sample=X.sample(min(300, len(X)), random_state=0))
    assert cm.exact and cm.reason == '' and cm.checked == min(300, len(X)), cm
    odd = _odd(X, fs)
    assert (odd.isna().sum() > 0).any()
    for rows in (X.head(1), X.iloc[[5]], X.head(8), odd, odd.head(1), odd.iloc[[20]], odd.iloc[[28]], X.head(2000), X):
        want = scores(pipe, rows, spec)
        ways = {(cm.rows_walked, cm.rows_encoded), (0, 10 ** 9)}   # as configured; encoded, then scikit-learn's trees
        if len(rows) <= 2000: ways.add((10 ** 9, 10 ** 9))        # the numpy walk of every tree on every row
        for walked, encoded in sorted(ways):
            c = copy.copy(cm)
            c.rows_walked, c.rows_encoded = walked, encoded
            got = c.scores(rows)
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert cm.fallbacks == 0
    return cm


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    store, st = _store(tmp_path_factory, 'demo')
    df = world.generate_world(rows=12_000, seed=11)
    ref, later = world.split_reference(df, 6)
    snap = ingest(store, 'ref', ref)
    contract = infer_contract(store, snap, name='apps', key=world.key, time_column=world.time_column,
                              exclude=[world.target, world.outcome_time_column], settings=st).register(store)
    spec = credit_spec(store, 'apps', model='credit')
    train = _with_rare(ref, 'purpose')
    fs = feature_set(spec, contract, train)
    pipe = make_pipeline(fs, spec.params, 0, spec.task).fit(build_features(train, fs, history=train), labels(spec, train[spec.target]))
    return pipe, spec, fs, build_features(later, fs, fs.histories(train))


def test_the_demo_model(demo):
    pipe, spec, fs, X = demo
    assert RARE in pipe[0].named_transformers_['cat'].infrequent_categories_[fs.categorical.index('purpose')]
    cm = _check(pipe, spec, fs, X)
    assert cm.column == 1 and cm.scores(X.head(3)).shape == (3,)


def test_one_record_at_a_time_answers_as_the_batch(demo):
    "The online path (build_features on one record, then the compiled model) gives the batch path's answer to that record."
    pipe, spec, fs, X = demo
    cm = compile_model(pipe, spec, fs, sample=X.head(100))
    df = world.generate_world(rows=12_000, seed=11)
    ref, later = world.split_reference(df, 6)
    train = _with_rare(ref, 'purpose')
    history = fs.histories(train)
    batch = scores(pipe, build_features(later, fs, history), spec)
    for i in range(0, len(later), max(1, len(later) // 40)):
        one = build_features(later.iloc[[i]], fs, history)
        pd.testing.assert_frame_equal(one, X.iloc[[i]], check_exact=True)
        np.testing.assert_allclose(cm.scores(one), batch[[i]], rtol=0, atol=1e-12)


def test_a_version_loaded_back_from_the_registry(tmp_path):
    "What the scoring core compiles: a version trained by `train`, saved by MLflow (skops) and loaded back."
    from wildproof.training import load_model, train
    store = Store(tmp_path / 'store')
    ref, later = world.split_reference(world.generate_world(rows=10_000, seed=2), 6)
    snap = ingest(store, 'ref', ref)
    infer_contract(store, snap, name='apps', key=world.key, time_column=world.time_column, exclude=[world.target, world.outcome_time_column]).register(store)
    m = train(store, snap, credit_spec(store, 'apps', model='credit'))
    pipe, fs = load_model(store, m.model_uri)
    X = build_features(later, fs, fs.histories(ref))
    cm = compile_model(pipe, m.spec, fs, sample=X.head(200))
    assert cm.exact, cm.reason
    for rows in (X.head(1), X.head(8), X.tail(64)):
        np.testing.assert_allclose(cm.scores(rows), scores(m.model, rows, m.spec), rtol=0, atol=1e-12)


def test_a_frame_the_tables_do_not_cover_goes_to_the_pipeline(demo):
    pipe, spec, fs, X = demo
    cm = compile_model(pipe, spec, fs)
    assert cm.exact and cm.checked == 0
    odd = X.head(8).astype({fs.numeric[0]: object})   # numbers as Python objects: not a numpy number column
    np.testing.assert_array_equal(cm.scores(odd), scores(pipe, odd, spec))
    assert cm.fallbacks == 1
    with pytest.raises(ValueError):                    # a missing column: the pipeline's own error
        cm.scores(X.head(2).drop(columns=[fs.categorical[0]]))


def test_pipelines_of_other_shapes_fall_back_and_say_why(demo):
    pipe, spec, fs, X = demo
    Xf, y = X.head(3000).fillna(0), labels(spec, pd.Series(np.arange(3000) % 3 == 0, dtype=float))
    cases = {
        'a LogisticRegression': (sk_pipeline(make_column_transformer((OneHotEncoder(handle_unknown='ignore'), fs.categorical), remainder='passthrough'),
                                             LogisticRegression(max_iter=30)),
                                 'the model is a LogisticRegression: only HistGradientBoostingClassifier and HistGradientBoostingRegressor are compiled'),
        'a scaler': (sk_pipeline(make_column_transformer((OneHotEncoder(handle_unknown='ignore', sparse_output=False), fs.categorical),
                                                         (StandardScaler(), fs.numeric), remainder='passthrough'), type(pipe[-1])(max_iter=5)),
                     'the standardscaler step is a StandardScaler: only OneHotEncoder and passthrough columns are compiled'),
        'a bare model': (type(pipe[-1])(max_iter=5), 'a HistGradientBoostingClassifier is not a scikit-learn Pipeline'),
    }
    for name, (model, reason) in cases.items():
        model.fit(Xf if name != 'a bare model' else Xf[fs.numeric], y)
        rows = Xf.head(8) if name != 'a bare model' else Xf[fs.numeric].head(8)
        cm = compile_model(model, spec, sample=rows)
        assert (cm.exact, cm.reason) == (False, reason), name
        np.testing.assert_array_equal(cm.scores(rows), scores(model, rows, spec))


def test_a_regression_of_another_loss_and_a_task_that_does_not_match(demo):
    pipe, spec, fs, X = demo
    y = X['loan_amount'].to_numpy() / 1000
    reg = make_pipeline(fs, dict(loss='poisson', max_iter=40), task='regression').fit(X.head(4000), y[:4000])
    rspec = copy.copy(spec); rspec.task = 'regression'
    cm = compile_model(reg, rspec, fs, sample=X.tail(200))
    assert cm.exact, cm.reason
    np.testing.assert_allclose(cm.scores(X.head(8)), reg.predict(X.head(8)), rtol=0, atol=1e-12)
    wrong = compile_model(reg, spec, fs)
    assert (wrong.exact, wrong.reason) == (False, 'a HistGradientBoostingRegressor for a binary task')


@pytest.fixture(scope='module', params=list(SHARED))
def shared(request, tmp_path_factory):
    name = request.param
    task, folder, reference, analysis, target, logged = SHARED[name]
    if not (DATA / folder / reference).is_file(): pytest.skip(f'the {name} data set is not in {DATA}')
    store, st = _store(tmp_path_factory, name)
    snap = ingest(store, name, (DATA / folder / reference))
    contract = infer_contract(store, snap, name=name, key='id', time_column='timestamp', exclude=[target, *logged], settings=st).register(store)
    ref = read_snapshot(store, snap)
    spec = init_spec(store, name, contract=name, target=target, task=task, **({'positive': 1} if task == 'binary' else {}))
    spec.inputs = [c for c in spec.inputs if c not in logged]
    fs = feature_set(spec, contract, ref)
    assert fs.categorical and fs.numeric, fs
    train = _with_rare(ref.head(20_000), fs.categorical[0])   # a third of the reference: quicker, as good a test
    pipe = make_pipeline(fs, spec.params, 0, task).fit(build_features(train, fs), labels(spec, train[target]))
    later = pd.read_csv(DATA / folder / analysis)
    return name, pipe, spec, fs, build_features(later, fs)


def test_the_shared_data_sets(shared):
    name, pipe, spec, fs, X = shared
    cm = _check(pipe, spec, fs, X)
    out = cm.scores(X.head(8))
    if spec.task == 'multiclass':
        assert out.shape == (8, 3) and list(pipe.classes_) == sorted(pipe.classes_)
        np.testing.assert_allclose(out.sum(1), 1, atol=1e-12)
    else: assert out.shape == (8,)
