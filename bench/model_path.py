#!/usr/bin/env python
"""Benchmark: a model version's answers on 1 to 50,000 rows, through its pipeline and through its compiled form (wildproof.compiled).

    .venv/bin/python bench/model_path.py                          # the demo's model on a fresh demo world (about 2 minutes on 2 cores)
    .venv/bin/python bench/model_path.py --rows 20000 --repeats 3 # a smoke run (about 30 s)
    .venv/bin/python bench/model_path.py --store ~/.wildproof     # the production version of credit_risk in a store `wildproof demo` made
    .venv/bin/python bench/model_path.py --repeats 5 --json bench/out/model_path.json

What it does, in one run:

0. Setup. Either the demo world (`world.generate_world(--rows, --seed)`, by default the size and seed `wildproof demo` uses, the first 6 months as the reference, its contract
   inferred and the credit model trained on it by `training.train`, as `wildproof demo` does), in a temporary store deleted at
   the end; or, with `--store`, the version of `--model` behind `production` in that store, loaded as the scoring core loads
   it, with its outcome history. The rows scored are applications after the reference (with `--store`: the version's
   training snapshot), the first n of them (repeated when there are fewer).
1. Timings, per call, for n = 1, 8, 64 and 50,000 rows. Each round times each step once (a burst of calls long enough to
   be measured, at least `--min-ms`), the steps interleaved; the median of `--repeats` rounds counts (the best is printed too):
   * `build_features(rows, fs, history)` as it is now, and as it was at `--baseline` (a git revision: the function of that
     commit's features.py, loaded beside the current one) when that revision has one;
   * `training.scores(pipe, X, spec)`: the pipeline (ColumnTransformer, then predict_proba), P(positive) of its column;
   * `CompiledModel.scores(X)` of `compile_model(pipe, spec, fs, sample=...)` (compiled once, before the timings);
   * the two whole paths: features + pipeline, features + compiled.
   Numeric libraries are limited to `--threads` threads (default 1, as in the REST service). `--clock cpu` times the
   process's CPU time instead of the wall clock: on a machine other work shares, it is the steadier of the two.
2. Checks. The compiled answers against the pipeline's on every n (the largest difference, which must be at most 1e-12),
   and the features of the baseline revision against the current ones (equal, to the last bit, with the same dtypes).

It prints the ratios measured in the same run; it never asserts a timing and exits 0 (1 if an answer differs).
"""
from __future__ import annotations

import os
os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')

import argparse, importlib.util, json, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

from _common import git_commit

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import wildproof
from wildproof.compiled import compile_model
from wildproof.features import build_features
from wildproof.settings import load_settings
from wildproof.store import Store
from wildproof.training import scores

HERE = Path(__file__).resolve().parent
SIZES = (1, 8, 64, 50_000)


def demo_model(root: Path, rows: int, seed: int):
    "A fresh demo world in `root`: the credit model trained on its reference as `wildproof demo` trains it."
    from wildproof.contracts import infer_contract
    from wildproof.datasets import ingest
    from wildproof.examples.credit import world
    from wildproof.examples.credit.features import credit_spec
    from wildproof.training import train
    store = Store(root / 'store')
    settings_file = root / 'settings.ini'
    settings_file.write_text(f'[store]\nroot = {store.root}\n', encoding='utf-8')
    settings = load_settings(settings_file, env={})
    df = world.generate_world(rows=rows, seed=seed)
    reference, later = world.split_reference(df, 6)
    ref = ingest(store, 'loans_reference', reference)
    contract = infer_contract(store, ref, name='loan_applications', key=world.key, time_column=world.time_column,
                              exclude=[world.target, world.outcome_time_column], settings=settings).register(store)
    spec = credit_spec(store, contract.name).register(store)
    m = train(store, ref, spec, settings=settings)
    history = m.features.histories(reference)
    print(f'demo world: {len(df):,} applications (seed {seed}), {len(reference):,} in the reference; trained {m.name} v{m.version} '
          f'(train ROC AUC {m.metrics["train_roc_auc"]:.3f}, {m.model.steps[-1][1].n_iter_} boosting rounds)')
    return m.model, m.spec, m.features, history, later.drop(columns=[world.target, world.outcome_time_column])


def stored_model(root: Path, model: str):
    "The version of `model` behind `production` in the store at `root`, loaded as the scoring core loads it."
    from wildproof.contracts import validated
    from wildproof.registry import alias_version
    from wildproof.scoring import outcome_history
    from wildproof.training import model_version
    store = Store(root)
    v = alias_version(store, model, 'production')
    if v is None: sys.exit(f'no version of {model} holds the alias production in {root}')
    mv = model_version(store, model, v)
    rows = validated(store, mv.snapshot, mv.contract).accepted()
    print(f'store {root}: {model} v{v} (production), {len(rows):,} rows of its training snapshot {mv.snapshot}')
    return mv.fitted(), mv.spec, mv.features, outcome_history(store, mv), rows


def baseline_build_features(rev: str):
    "`build_features` of features.py at git revision `rev`, loaded as a module of its own (None when that revision has none)."
    src = subprocess.run(['git', 'show', f'{rev}:src/wildproof/features.py'], cwd=HERE, capture_output=True, text=True)
    if src.returncode != 0 or 'def build_features' not in src.stdout: return None
    path = Path(tempfile.mkdtemp()) / f'features_{rev}.py'
    path.write_text(src.stdout.replace('from .', 'from wildproof.'))
    spec = importlib.util.spec_from_file_location(f'features_{rev}', path)
    mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)   # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return lambda rows, fs, history: mod.build_features(rows, mod.FeatureSet.from_dict(fs.to_dict()), history)


def per_call(f, min_ms: float, clock=time.perf_counter) -> float:
    "Seconds per call of `f`: a burst of calls lasting at least `min_ms`, divided by its length."
    t = time.perf_counter(); f(); once = time.perf_counter() - t
    k = max(1, int(min_ms / 1e3 / max(once, 1e-7)))
    t = clock()
    for _ in range(k): f()
    return (clock() - t) / k


def rows_of(data: pd.DataFrame, n: int) -> pd.DataFrame:
    "The first `n` rows of `data`, repeated when it has fewer (with a fresh index)."
    reps = -(-n // len(data))
    return (pd.concat([data] * reps) if reps > 1 else data).head(n).reset_index(drop=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    demo = load_settings(env={}).demo
    ap.add_argument('--rows', type=int, default=demo.rows, help=f'applications in the demo world (default {demo.rows:,}, as in `wildproof demo`)')
    ap.add_argument('--seed', type=int, default=demo.seed, help=f'(default {demo.seed}, as in `wildproof demo`)')
    ap.add_argument('--store', type=Path, default=None, help='measure the production version of --model in this store instead')
    ap.add_argument('--model', default='credit_risk')
    ap.add_argument('--repeats', type=int, default=9, help='rounds of timings (default 9; the median counts)')
    ap.add_argument('--min-ms', type=float, default=40.0, help='length of each burst of calls, in ms (default 40)')
    ap.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                    help='wall time, or the CPU time of this process (steadier on a machine other work shares) (default wall)')
    ap.add_argument('--threads', type=int, default=1, help='threads of the numeric libraries (default 1, as in the REST service)')
    ap.add_argument('--baseline', default='94e16bd', help='git revision whose build_features is timed beside the current one (default 94e16bd)')
    ap.add_argument('--json', type=Path, default=None, help='also write the figures to this JSON file')
    args = ap.parse_args()

    print(f'wildproof {wildproof.__version__} at {git_commit()}; Python {platform.python_version()}, {os.cpu_count()} cores, '
          f'numeric libraries limited to {args.threads} thread(s)')
    tmp = None
    try:
        if args.store: pipe, spec, fs, history, data = stored_model(args.store.expanduser(), args.model)
        else:
            tmp = Path(tempfile.mkdtemp(prefix='wildproof-bench-model-path-'))
            pipe, spec, fs, history, data = demo_model(tmp, args.rows, args.seed)
        old_features = baseline_build_features(args.baseline)
        t = time.perf_counter()
        sample = build_features(rows_of(data, 2_000).sample(500, random_state=0), fs, history)
        cm = compile_model(pipe, spec, fs, sample=sample)
        print(f'compile_model: {time.perf_counter() - t:.2f} s with its self-check on {cm.checked} rows; exact {cm.exact}'
              + (f' ({cm.reason})' if cm.reason else ''))
        return measure(args, pipe, spec, fs, history, data, cm, old_features)
    finally:
        if tmp: shutil.rmtree(tmp, ignore_errors=True)


def measure(args, pipe, spec, fs, history, data, cm, old_features) -> int:
    steps = {'features': lambda r, X: build_features(r, fs, history),
             'pipeline': lambda r, X: scores(pipe, X, spec),
             'compiled': lambda r, X: cm.scores(X),
             'features + pipeline': lambda r, X: scores(pipe, build_features(r, fs, history), spec),
             'features + compiled': lambda r, X: cm.scores(build_features(r, fs, history))}
    if old_features: steps[f'features at {args.baseline}'] = lambda r, X: old_features(r, fs, history)
    out, bad = {}, 0
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter
    with threadpool_limits(args.threads):
        for n in SIZES:
            rows = rows_of(data, n)
            X = build_features(rows, fs, history)
            diff = float(np.max(np.abs(cm.scores(X) - scores(pipe, X, spec)))) if n else 0.0
            same = None
            if old_features:
                Y = old_features(rows, fs, history)
                same = list(Y.columns) == list(X.columns) and list(Y.dtypes) == list(X.dtypes) and Y.index.equals(X.index) and Y.equals(X)
            bad += diff > 1e-12 or same is False
            times = {k: [] for k in steps}
            for _ in range(args.repeats if n < 1000 else max(3, args.repeats // 3)):
                for k, f in steps.items(): times[k].append(per_call(lambda: f(rows, X), args.min_ms if n < 1000 else 0, clock))
            out[n] = dict(median_ms={k: 1e3 * float(np.median(v)) for k, v in times.items()},
                          best_ms={k: 1e3 * float(np.min(v)) for k, v in times.items()}, max_abs_diff=diff, features_equal_baseline=same)
    report(args, out, cm)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(commit=git_commit(), threads=args.threads, clock=args.clock, exact=cm.exact, reason=cm.reason, sizes=out), indent=2))
    print('every compiled answer equals the pipeline\'s to 1e-12' + (' and the baseline\'s features equal the current ones' if all(
        v['features_equal_baseline'] is not False for v in out.values()) else '') if not bad else f'{bad} size(s) where an answer or a feature DIFFERS')
    return 1 if bad else 0


def report(args, out: dict, cm) -> None:
    keys = list(next(iter(out.values()))['median_ms'])
    w = max(map(len, keys)) + 2
    print(f'\nper call, ms of {"CPU" if args.clock == "cpu" else "wall"} time: the median of the rounds (the best)')
    print(f'{"rows":<{w}}' + ''.join(f'{n:>22,}' for n in out))
    for k in keys:
        print(f'{k:<{w}}' + ''.join(f'{out[n]["median_ms"][k]:>12.3f} ({out[n]["best_ms"][k]:>7.3f})' for n in out))
    print('\nratios of the medians (the same run)')
    ratios = [('model alone: pipeline / compiled', 'pipeline', 'compiled'),
              ('whole path: features + pipeline / features + compiled', 'features + pipeline', 'features + compiled')]
    if f'features at {args.baseline}' in keys: ratios.insert(0, (f'build_features: at {args.baseline} / now', f'features at {args.baseline}', 'features'))
    w = max(len(r[0]) for r in ratios) + 2
    print(f'{"rows":<{w}}' + ''.join(f'{n:>11,}' for n in out))
    for label, a, b in ratios:
        print(f'{label:<{w}}' + ''.join(f'{out[n]["median_ms"][a] / out[n]["median_ms"][b]:>10.2f}x' for n in out))
    print(f'largest |compiled - pipeline|: ' + ', '.join(f'{out[n]["max_abs_diff"]:.1e} ({n:,} rows)' for n in out)
          + f'; above {cm.rows_encoded:,} rows the compiled model hands the batch to the pipeline')


if __name__ == '__main__':
    sys.exit(main())
