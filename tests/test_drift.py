"""Drift statistics (`wildproof.drift`) in a real DuckDB, against scipy (KS, chi-square) and Evidently 0.7 (PSI, Jensen-Shannon, chi-square).

Evidently is given the data as its data-drift code gives it to a stattest (nulls, NaN and ±inf dropped); wildproof is given
Evidently's bins through `profile(..., edges=...)`: Sturges edges over reference + current when the reference has more than 20
distinct values, else one bin per value.
"""
import json
import math
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wildproof import drift as dm
from wildproof.drift import DriftError, Profile, drift, ks_statistic, profile

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType

NUM, CAT = ColumnType.Numerical, ColumnType.Categorical


def present(s: pd.Series) -> pd.Series:
    "What Evidently's data drift hands a stattest: the column without nulls, NaN and ±inf."
    return s.replace([np.inf, -np.inf], np.nan).dropna()


def evidently_edges(ref: pd.Series, cur: pd.Series) -> list[float]:
    "The interior edges of the bins Evidently's get_binned_data uses for a numeric column."
    if ref.nunique() > 20: return list(np.histogram_bin_edges(np.concatenate([ref, cur]), bins='sturges')[1:-1])
    return sorted(set(ref) | set(cur))[1:]


def data(seed: int, n_ref: int = 4000, n_cur: int = 3000, shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    "A reference and a window: numeric (normal, skewed, integer, constant, with NaN/inf/nulls) and categorical (with nulls, an unseen category when shifted)."
    rng = np.random.default_rng(seed)
    def side(n, s):
        d = pd.DataFrame({
            'normal': rng.normal(s, 1, n),
            'skewed': rng.lognormal(s, 1.5, n),
            'ints': rng.poisson(3 + 3 * s, n).astype(float),
            'const': np.full(n, 2.5),
            'dirty': rng.normal(0, 1 + s, n),
            'grade': rng.choice(list('ABCDE'), n, p=[0.4, 0.3, 0.15, 0.1, 0.05] if not s else [0.2, 0.2, 0.2, 0.2, 0.2]),
            'region': rng.choice(['north', 'south', 'east', 'west'] + (['mars'] if s else []), n,
                                 p=[0.25] * 4 if not s else [0.2, 0.2, 0.2, 0.2, 0.2]).astype(object),
        })
        d.loc[rng.random(n) < 0.05, 'dirty'] = np.nan
        d.loc[rng.random(n) < 0.01, 'dirty'] = np.inf
        d.loc[rng.random(n) < 0.01, 'dirty'] = -np.inf
        d.loc[rng.random(n) < 0.1, 'region'] = None
        return d
    return side(n_ref, 0.0), side(n_cur, shift)


COLUMNS = {'normal': 'numeric', 'skewed': 'numeric', 'ints': 'numeric', 'const': 'numeric', 'dirty': 'numeric',
           'grade': 'categorical', 'region': 'categorical'}
NUMERIC = [c for c, k in COLUMNS.items() if k == 'numeric']
CATEGORICAL = [c for c, k in COLUMNS.items() if k == 'categorical']


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def run(con, ref, cur, **kw):
    con.register('ref', ref); con.register('cur', cur)
    p = profile(con, 'ref', COLUMNS, **kw)
    return p, drift(con, 'cur', p, reference='ref').set_index('column')


@pytest.mark.parametrize('seed,shift', [(1, 0.0), (2, 0.0), (3, 0.3), (4, 1.0)])
def test_ks_against_scipy(con, seed, shift):
    ref, cur = data(seed, shift=shift)
    _, d = run(con, ref, cur)
    for c in NUMERIC:
        a, b = present(ref[c]), present(cur[c])
        assert d.loc[c, 'ks'] == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12), c
        assert d.loc[c, 'ks_p_value'] == pytest.approx(stats.ks_2samp(a, b, method='asymp').pvalue, abs=1e-12, rel=1e-9), c


@pytest.mark.parametrize('n,points', [(20_000, np.linspace(1.2, 6, 15)), (100_000, np.linspace(1.2, 6, 15)), (1_000_000, [1.49, 3.0])])
def test_ks_p_value_expansion_within_1e_6_of_scipy(n, points):
    "For large samples and p below about 0.025, ks_p_value uses the first-order expansion of Smirnov's series that scipy sums (slowly)."
    for x in points:
        d = x / math.sqrt(n)
        assert abs(dm.ks_p_value(d, 2 * n, 2 * n) - stats.kstwo.sf(d, n)) < 1e-6, (n, x)


@pytest.mark.parametrize('seed,shift', [(5, 0.0), (6, 0.5), (7, 1.0)])
def test_psi_and_js_against_evidently_on_its_bins(con, seed, shift):
    ref, cur = data(seed, shift=shift)
    con.register('ref', ref); con.register('cur', cur)
    edges = {c: evidently_edges(present(ref[c]), present(cur[c])) for c in NUMERIC}
    p = profile(con, 'ref', COLUMNS, edges=edges)
    d = drift(con, 'cur', p).set_index('column')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for c, kind in COLUMNS.items():
            a, b = present(ref[c]), present(cur[c])
            t = NUM if kind == 'numeric' else CAT
            assert d.loc[c, 'psi'] == pytest.approx(_psi(a, b, t, 0.1)[0], abs=1e-6, rel=1e-9), c
            assert d.loc[c, 'js'] == pytest.approx(_jensenshannon(a, b, t, 0.1)[0], abs=1e-6, rel=1e-9), c


@pytest.mark.parametrize('seed,shift', [(8, 0.0), (9, 1.0)])
def test_chi_square_against_scipy_and_evidently(con, seed, shift):
    ref, cur = data(seed, shift=shift)
    _, d = run(con, ref, cur)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for c in CATEGORICAL:
            a, b = present(ref[c]), present(cur[c])
            keys = sorted(set(a) | set(b))
            obs = np.array([(b == k).sum() for k in keys], float)
            exp = np.array([(a == k).sum() for k in keys], float) * len(b) / len(a)
            want = stats.chisquare(obs, exp)
            assert d.loc[c, 'chi2'] == pytest.approx(want.statistic, rel=1e-9), c
            assert d.loc[c, 'chi2_p_value'] == pytest.approx(want.pvalue, abs=1e-9), c
            assert d.loc[c, 'chi2_p_value'] == pytest.approx(_chi_stat_test(a, b, CAT, 0.05)[0], abs=1e-9), c
            assert d.loc[c, 'unseen_share'] == pytest.approx((~b.isin(set(a))).mean()), c


def test_unseen_category(con):
    ref, cur = data(10, shift=1.0)
    _, d = run(con, ref, cur)
    assert d.loc['region', 'unseen_share'] == pytest.approx((present(cur.region) == 'mars').mean())
    assert d.loc['region', 'chi2'] == math.inf and d.loc['region', 'chi2_p_value'] == 0.0   # as Evidently's chisquare
    assert math.isfinite(d.loc['region', 'psi']) and d.loc['region', 'psi'] > 0.2
    assert d.loc['grade', 'unseen_share'] == 0.0 and math.isfinite(d.loc['grade', 'chi2'])


def test_unshifted_is_small_shifted_is_large(con):
    ref, cur = data(11)
    _, same = run(con, ref, cur)
    assert (same.loc[NUMERIC + CATEGORICAL, 'psi'] < 0.1).all(), same.psi
    ref, cur = data(12, shift=1.0)
    _, moved = run(con, ref, cur)
    for c in ['normal', 'skewed', 'ints', 'dirty', 'grade', 'region']:
        assert moved.loc[c, 'psi'] > 0.2, (c, moved.loc[c, 'psi'])
    assert moved.loc['const', 'psi'] == 0.0 and moved.loc['const', 'ks'] == 0.0


def test_missing_shares_nulls_nan_inf(con):
    ref, cur = data(13)
    _, d = run(con, ref, cur)
    for c in COLUMNS:
        assert d.loc[c, 'missing_reference'] == pytest.approx(1 - len(present(ref[c])) / len(ref)), c
        assert d.loc[c, 'missing_current'] == pytest.approx(1 - len(present(cur[c])) / len(cur)), c
    assert d.loc['dirty', 'missing_current'] > 0.05


@pytest.mark.parametrize('resolution,exact_rows,levels,passes', [(4096, 250_000, 3, ['0', 'exact']),      # the defaults: straight to exact counts
                                                                  (2, 50, 3, ['0', '1', '2']),          # coarse buckets, refined twice (then every bucket left holds one value)
                                                                  (2, 50, 2, ['0', '1', 'exact'])])     # refined once, then exact
def test_refinement_levels_stay_exact(con, monkeypatch, resolution, exact_rows, levels, passes):
    "Force every path of the KS computation: coarse buckets (many candidates), each finer level, exact counts; two columns in lockstep."
    rng = np.random.default_rng(14)
    a = np.r_[rng.normal(0, 1, 4000), np.round(rng.normal(0, 1, 1000), 2), [1e300, -1e300]]
    b = np.r_[rng.normal(0.02, 1, 3000), np.round(rng.normal(0, 1, 1000), 2), [5e299]]
    con.register('a', pd.DataFrame({'v': a, 'w': a / 10})); con.register('b', pd.DataFrame({'v': b, 'w': b / 10}))
    want = stats.ks_2samp(a, b).statistic
    monkeypatch.setattr(dm, '_EXACT_ROWS', exact_rows); monkeypatch.setattr(dm, '_LEVELS', levels)
    seen, side = [], dm._ks_side
    def spy(con, relation, queries, first):
        for _, _, _, _, key, _ in queries:
            seen.append('exact' if key == 'v' else str(round(math.log(float(key.split('floor(')[1].split(' ')[0]) / resolution, 64))))
        return side(con, relation, queries, first)
    monkeypatch.setattr(dm, '_ks_side', spy)
    assert ks_statistic(con, 'a', 'b', 'v', center=0.0, scale=1.0, resolution=resolution)[0] == pytest.approx(want, abs=1e-12)
    assert seen[::2] == passes                                                  # each pass queries both sides
    got = dm.ks_statistics(con, 'a', 'b', {'v': (0.0, 1.0, resolution), 'w': (0.1, 0.05, resolution)})
    assert got['v'][0] == got['w'][0] == pytest.approx(want, abs=1e-12)


def test_bucket_key_is_monotone_and_spans_hold_their_values(con):
    "The bucket keys never decrease with the value (down to ±0, subnormals and ±1e308), and `_ks_span` holds every value of its buckets."
    rng = np.random.default_rng(18)
    v = np.sort(np.r_[rng.normal(0, 1, 20000), rng.lognormal(0, 3, 20000), -rng.lognormal(0, 3, 20000), 0.0, -0.0, 1e-300, -1e-300, 1e308, -1e308])
    con.register('vals', pd.DataFrame({'v': v}))
    k0, k1 = dm._ks_key(0, 0.3, 64), dm._ks_key(1, 0.3, 64)
    got = con.execute(f'SELECT v, {k0} AS k0, {k1} AS k1 FROM (SELECT v, v - 0.25 AS d FROM vals) ORDER BY v').df()
    assert (np.diff(got.k0) >= 0).all() and (np.diff(got.k1) >= 0).all()
    parent = np.where(np.isinf(got.k1), got.k1, np.sign(got.k1) * (np.abs(got.k1) // 64))
    assert (parent == got.k0).all()                                                  # a finer bucket lies in one coarser bucket
    lo, hi = dm._ks_span(got.k0.unique(), 0.25, 0.3, 64)
    assert lo <= v.min() or v.min() == -1e308
    for k, grp in got.groupby('k0'):
        a, z = dm._ks_span([k], 0.25, 0.3, 64)
        assert a <= grp.v.min() and grp.v.max() <= z, k


def test_edge_cases(con):
    ref, cur = data(15)
    con.register('ref', ref); con.register('cur', cur)
    p = profile(con, 'ref', COLUMNS)
    empty = drift(con, 'SELECT * FROM cur WHERE false', p, reference='ref')
    assert (empty.n_current == 0).all() and empty[['psi', 'js', 'ks', 'chi2']].isna().all().all()
    nulls = drift(con, 'SELECT NULL::DOUBLE AS normal, skewed, ints, const, dirty, NULL AS grade, region FROM cur', p, reference='ref').set_index('column')
    assert nulls.loc['normal', 'missing_current'] == 1.0 and math.isnan(nulls.loc['normal', 'psi']) and math.isnan(nulls.loc['normal', 'ks'])
    assert nulls.loc['grade', 'missing_current'] == 1.0 and math.isnan(nulls.loc['grade', 'chi2'])
    assert math.isfinite(nulls.loc['skewed', 'ks'])
    # an all-null reference column
    con.register('r0', ref.assign(normal=np.nan))
    p0 = profile(con, 'r0', {'normal': 'numeric'})
    assert p0.stats['normal']['values'] == 0 and p0.stats['normal']['edges'] == []
    assert drift(con, 'cur', p0, reference='r0')[['psi', 'js', 'ks']].isna().all().all()
    # the constant column: three bins, and a move off the constant shows
    assert p.stats['const']['counts'] == [0, len(ref), 0]
    moved = drift(con, 'SELECT normal, skewed, ints, const + 1 AS const, dirty, grade, region FROM cur', p, reference='ref').set_index('column')
    assert moved.loc['const', 'psi'] > 1 and moved.loc['const', 'ks'] == 1.0
    # refusals
    with pytest.raises(DriftError, match="lacks column"): drift(con, 'SELECT normal FROM cur', p)
    with pytest.raises(DriftError, match='pass the relation that was profiled'): drift(con, 'cur', p, reference='cur')
    with pytest.raises(DriftError, match='cannot read'): drift(con, 'nowhere', p)
    with pytest.raises(DriftError, match='unknown kind'): profile(con, 'ref', {'normal': 'float'})


def test_profile_json_round_trip_and_windows_from_the_audit_log(con):
    "A profile stored as JSON, and a window pulled out of prediction records' inputs_json as the audit log holds them."
    ref, cur = data(16, shift=0.5)
    con.register('ref', ref)
    p = profile(con, 'ref', COLUMNS)
    stored = json.dumps(p.to_dict())
    assert Profile.from_dict(json.loads(stored)) == p
    records = pd.DataFrame({'request_id': [f'r{i}' for i in range(len(cur))],
                            'inputs_json': [json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()})
                                            for r in cur.to_dict('records')]})
    con.register('predictions', records)
    feats = ', '.join(f"inputs_json->>'$.{c}' AS {c}" for c in COLUMNS)
    window = f'SELECT {feats} FROM predictions'
    got = drift(con, window, json.loads(stored), reference='ref').set_index('column')
    direct = cur.replace([np.inf, -np.inf], np.nan)               # JSON cannot hold inf: it was written as null
    con.register('cur', direct)
    want = drift(con, 'cur', p, reference='ref').set_index('column')
    pd.testing.assert_frame_equal(got, want, rtol=1e-12)
    with pytest.raises(DriftError, match='version'): Profile.from_dict({**p.to_dict(), 'version': 99})
