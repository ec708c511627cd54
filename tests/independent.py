"""Drift statistics computed independently of wildproof (numpy, as Evidently and NannyML define them), for the tests that check
wildproof's stored values on public data sets."""
import numpy as np
import pandas as pd


def edges(v: np.ndarray, bins: int = 10) -> np.ndarray:
    "Decile edges of the reference (the lower quantile, as DuckDB's quantile_disc), or each value's own bin when it has at most 10."
    u = np.unique(v)
    if len(u) <= bins: return u[1:] if len(u) > 1 else np.array([u[0], np.nextafter(u[0], np.inf)])
    q = np.quantile(v, np.arange(1, bins) / bins, method='inverted_cdf')
    return np.unique(q[q > v.min()])


def text(s: pd.Series) -> pd.Series:
    "Categories as text, booleans as DuckDB writes them."
    return s.dropna().map(lambda v: ('true' if v else 'false') if isinstance(v, (bool, np.bool_)) else str(v))


def shares(ref: pd.Series, cur: pd.Series, kind: str) -> tuple[np.ndarray, np.ndarray]:
    "The reference's and the current's shares per bin (numeric: the reference's deciles) or per category."
    if kind == 'numeric':
        e = edges(ref.dropna().to_numpy(float))
        count = lambda s: np.bincount(np.searchsorted(e, s.dropna().to_numpy(float), side='right'), minlength=len(e) + 1)
        r, c = count(ref), count(cur)
    else:
        cats = sorted(set(text(ref)) | set(text(cur)))
        r = text(ref).value_counts().reindex(cats, fill_value=0).to_numpy()
        c = text(cur).value_counts().reindex(cats, fill_value=0).to_numpy()
    return r / r.sum(), c / c.sum()


def psi(r, c) -> float:
    def fill(p):   # Evidently's replacement of empty bins
        p = p.copy(); nz = p[p > 0]; p[p == 0] = nz.min() / 1e6 if nz.min() <= 1e-4 else 1e-4; return p
    r, c = fill(r), fill(c)
    return float(np.sum((r - c) * np.log(r / c)))


def js(r, c) -> float:
    "Jensen-Shannon distance (natural logarithm), as scipy.spatial.distance.jensenshannon."
    m = (r + c) / 2
    kl = lambda p: np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / m), 0.0))
    return float(np.sqrt((kl(r) + kl(c)) / 2))
