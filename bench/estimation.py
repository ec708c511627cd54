#!/usr/bin/env python
"""Benchmark: performance estimated without labels, for a regression (direct loss estimation, `monitoring.fit_loss_model`) and
a multiclass model (confidence-based, `monitoring.fit_class_calibration` and `estimated_multiclass`), on the peer data sets of
issue 19 in ../shared/data (NannyML's synthetic car prices and credit-card products), each next to a baseline measured in the
same run.

    .venv/bin/python bench/estimation.py                 # both data sets, 3 repeats (about a minute on 2 cores)
    .venv/bin/python bench/estimation.py --repeats 1 --json bench/out/estimation.json

What it does, per data set:

1. Data. The 60,000 reference rows (inputs, the deployed model's logged prediction or class probabilities, the outcome), and the
   60,000 analysis rows with their targets, in event-time order, cut into 10 chunks of 6,000 rows (as `monitor --chunk-rows 6000`).
2. Fit (timed, best and median of `--repeats`, wall seconds): the regression's two error models (absolute and squared error;
   gradient boosting, 50 trees of 15 leaves, on one thread), or the multiclass model's one-vs-rest calibration check
   (cross-validated isotonic regressions per class, `[monitoring] calibration = auto`).
3. Estimate (timed): the 10 chunks' estimated MAE and RMSE, or accuracy, macro F1 and macro ROC AUC (with the per-class figures).
4. Peak memory: tracemalloc's peak of Python allocations (numpy included) during one fit and during one estimate of the 10 chunks,
   in runs of their own (tracemalloc slows the code it traces, so those runs are not timed).
5. Gap: per chunk, the estimate minus the realized figure (computed with scikit-learn on the chunk's targets), and for the
   regression that gap in sampling errors (the standard deviation of the realized figure over the reference's chunks).
6. Baselines, same data, same run: regression: a plain scikit-learn `HistGradientBoostingRegressor()` fitted to the outcome on
   one thread (its defaults: up to 100 trees of 31 leaves, early stopping on a 10 % validation split, as above 10,000 rows); multiclass: wildproof's binary estimator on the same probabilities (calibration check of one class against the rest
   and `estimated_performance` on the 10 chunks). The ratio fit / baseline fit is printed.
7. Goal (printed PASS/FAIL, never asserted): the regression's fit takes well under a second (< 1 s; a peer library takes 12 to
   38 s to fit its error model on these rows, and 0.4 to 0.6 s to estimate).
"""
from __future__ import annotations
import argparse, json, statistics, sys, time, tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_commit, verdict  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
CHUNK = 6_000
PRICE_NUM = ['car_age', 'km_driven', 'price_new', 'accident_count', 'door_count']
PRICE_CAT = ['fuel', 'transmission']
CLASSES = ['prepaid_card', 'highstreet_card', 'upmarket_card']


def timed(fn, repeats: int) -> tuple[float, float, object]:
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def peak_mb(fn) -> float:
    tracemalloc.start(); tracemalloc.reset_peak()
    try: fn()
    finally:
        _, peak = tracemalloc.get_traced_memory(); tracemalloc.stop()
    return peak / 2**20


def chunks(folder: str, reference: str, analysis: str, targets: str):
    ref = pd.read_csv(DATA / folder / reference)
    ana = pd.read_csv(DATA / folder / analysis).merge(pd.read_csv(DATA / folder / targets), on='id')
    order = lambda d: d.assign(t=pd.to_datetime(d.timestamp)).sort_values(['t', 'id'], kind='stable').reset_index(drop=True)
    ref, ana = order(ref), order(ana)
    return ref, [ana.iloc[k:k + CHUNK] for k in range(0, len(ana) - CHUNK + 1, CHUNK)]


def regression(repeats: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from wildproof.monitoring import _one_thread, fit_loss_model, realized_regression
    ref, parts = chunks('car_price', 'regression_synthetic_reference.csv', 'regression_synthetic_analysis.csv',
                        'regression_synthetic_analysis_targets.csv')
    frame = lambda d: d[PRICE_NUM + PRICE_CAT].assign(score=d.y_pred.astype(float), outcome=d.y_true.astype(float) if 'y_true' in d else np.nan)
    rf, cur = frame(ref), [frame(p) for p in parts]
    fit_best, fit_med, lm = timed(lambda: fit_loss_model(rf, PRICE_NUM, PRICE_CAT), repeats)
    est_best, est_med, ests = timed(lambda: [lm.estimate(c) for c in cur], repeats)
    X = rf[PRICE_NUM].assign(**{c: rf[c].astype('category') for c in PRICE_CAT})

    def baseline():
        with _one_thread(): return HistGradientBoostingRegressor(categorical_features='from_dtype', random_state=0).fit(X, rf.outcome)
    base_best, base_med, _ = timed(baseline, repeats)
    rows = []
    for k, (c, e) in enumerate(zip(cur, ests)):
        real = realized_regression(c.outcome, c.score)
        rows.append(dict(chunk=k, estimated_mae=e['mae'], realized_mae=real['mae'], gap_mae=e['mae'] - real['mae'],
                         gap_mae_se=(e['mae'] - real['mae']) / e['mae_sampling_error'], estimated_rmse=e['rmse'], realized_rmse=real['rmse'],
                         gap_rmse=e['rmse'] - real['rmse'], gap_rmse_se=(e['rmse'] - real['rmse']) / e['rmse_sampling_error']))
    return dict(name='regression (car_price): direct loss estimation', fit=(fit_best, fit_med), estimate=(est_best, est_med),
                baseline=('plain HistGradientBoostingRegressor() fit to the outcome, one thread', base_best, base_med),
                fit_peak_mb=peak_mb(lambda: fit_loss_model(rf, PRICE_NUM, PRICE_CAT)),
                estimate_peak_mb=peak_mb(lambda: [lm.estimate(c) for c in cur]), chunks=pd.DataFrame(rows),
                sampling_error=dict(mae=ests[0]['mae_sampling_error'], rmse=ests[0]['rmse_sampling_error']))


def multiclass(repeats: int) -> dict:
    from wildproof.monitoring import (calibrate_classes, estimated_multiclass, estimated_performance, fit_calibration, fit_class_calibration,
                                      realized_multiclass)
    ref, parts = chunks('multiclass', 'mc_reference.csv', 'mc_analysis.csv', 'mc_analysis_gt.csv')
    cols = [f'y_pred_proba_{c}' for c in CLASSES]
    P = lambda d: d[cols].to_numpy(float)
    fit_best, fit_med, cal = timed(lambda: fit_class_calibration(P(ref), ref.y_true, CLASSES), repeats)

    def estimate():
        return [estimated_multiclass(calibrate_classes(P(c), cal), CLASSES, c.y_pred, ranking=P(c)) for c in parts]
    est_best, est_med, ests = timed(estimate, repeats)
    first = CLASSES[0]

    def binary():   # the binary estimator on one class against the rest: calibration check, then 10 chunks
        iso = fit_calibration(ref[cols[0]], (ref.y_true == first).astype(float))
        for c in parts:
            s = c[cols[0]].to_numpy(float)
            estimated_performance(iso.predict(s) if iso is not None else s, 0.5, ranking=s, decided=(c.y_pred == first).to_numpy())
    base_best, base_med, _ = timed(binary, repeats)
    rows = []
    for k, (c, e) in enumerate(zip(parts, ests)):
        real = realized_multiclass(c.y_true, P(c), CLASSES, c.y_pred)
        rows.append(dict(chunk=k, **{f'{w}_{m}': (e[m] if w == 'estimated' else real[m]) for m in ('accuracy', 'macro_f1', 'macro_roc_auc')
                                     for w in ('estimated', 'realized')},
                         **{f'gap_{m}': e[m] - real[m] for m in ('accuracy', 'macro_f1', 'macro_roc_auc')}))
    return dict(name='multiclass (credit-card products): confidence-based estimation', fit=(fit_best, fit_med), estimate=(est_best, est_med),
                baseline=('the binary estimator on one class against the rest (calibration check + 10 chunks)', base_best, base_med),
                fit_peak_mb=peak_mb(lambda: fit_class_calibration(P(ref), ref.y_true, CLASSES)), estimate_peak_mb=peak_mb(estimate),
                chunks=pd.DataFrame(rows), calibrated=cal is not None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--json', type=Path, help='also write the figures here')
    a = ap.parse_args(argv)
    if not (DATA / 'car_price').is_dir() or not (DATA / 'multiclass').is_dir():
        print(f'the car_price and multiclass data sets are not at {DATA}: nothing to measure'); return 0
    print(f'commit {git_commit()}; {a.repeats} repeat(s); chunks of {CHUNK:,} rows')
    out = []
    for fn in (regression, multiclass):
        r = fn(a.repeats)
        label, bb, bm = r['baseline']
        print(f'\n== {r["name"]}')
        print(f'fit on 60,000 reference rows: best {r["fit"][0]:.3f} s, median {r["fit"][1]:.3f} s; peak {r["fit_peak_mb"]:.1f} MB (tracemalloc)')
        print(f'estimate 10 chunks:           best {r["estimate"][0]:.3f} s, median {r["estimate"][1]:.3f} s; peak {r["estimate_peak_mb"]:.1f} MB')
        print(f'baseline, {label}: best {bb:.3f} s, median {bm:.3f} s; fit / baseline = {r["fit"][0] / bb:.2f}')
        if 'sampling_error' in r: print(f'sampling error of a chunk (sd over the reference\'s 10 chunks): MAE {r["sampling_error"]["mae"]:.2f}, RMSE {r["sampling_error"]["rmse"]:.2f}')
        if 'calibrated' in r: print(f'calibrated on the reference: {r["calibrated"]} (auto: only when cross-validation shows it helps)')
        with pd.option_context('display.width', 250, 'display.max_columns', 20):
            print(r['chunks'].round(4).to_string(index=False))
        gaps = r['chunks'].filter(like='gap_').abs()
        print('largest |gap| per figure: ' + ', '.join(f'{c.removeprefix("gap_")} {v:.4g}' for c, v in gaps.max().items()))
        out.append({**{k: v for k, v in r.items() if k != 'chunks'}, 'chunks': r['chunks'].to_dict('records')})
    fit = out[0]['fit'][0]
    print(f'\ngoal: the regression error model fits in under 1 s on 60,000 rows (peer library: 12 to 38 s): {fit:.3f} s {verdict(fit < 1.0)}')
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(dict(commit=git_commit(), results=out), default=float, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
