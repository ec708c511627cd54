"""Dashboards and reports show the task's figures: a regression (car prices) and a multiclass model (credit-card products), both
run elsewhere and monitored from their logged predictions through the command line (a tenth of the peer data sets of issue 19,
chunks of 1,500 rows), rendered by the real dashboard components and a real papermill run of the monitoring report. A regression
shows MAE and RMSE, never a ROC AUC; a multiclass model shows accuracy and macro F1 and its class mix. The slice section of an
evaluation plots the task's primary metric (small synthetic frames, no data needed)."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
EXE = Path(sys.executable).parent / 'wildproof'
EVERY, CHUNK = 10, 1_500          # every tenth row: 6,000 reference and 6,000 analysis rows, four chunks
CLASSES = ['prepaid_card', 'highstreet_card', 'upmarket_card']
PROBA = {c: f'y_pred_proba_{c}' for c in CLASSES}
SETS = dict(regression=dict(model='car_price_deployed', folder='car_price', reference='regression_synthetic_reference.csv',
                            analysis='regression_synthetic_analysis.csv', targets='regression_synthetic_analysis_targets.csv', exclude=['y_true', 'y_pred']),
            multiclass=dict(model='card_product_deployed', folder='multiclass', reference='mc_reference.csv', analysis='mc_analysis.csv',
                            targets='mc_analysis_gt.csv', exclude=['y_true', 'y_pred', *PROBA.values()]))
HAVE_DATA = all((DATA / d['folder'] / d['targets']).is_file() for d in SETS.values())
needs_data = pytest.mark.skipif(not HAVE_DATA, reason=f'the car price and multiclass data sets are not at {DATA}')


def run(*args, cwd, store):
    e = {k: v for k, v in os.environ.items() if not k.startswith('WILDPROOF_')}
    e['MLFLOW_DISABLE_TELEMETRY'] = 'true'
    r = subprocess.run([str(EXE), '--store', str(store), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def monitored(cwd: Path, task: str) -> Path:
    "The command line as a user runs it on a model that runs elsewhere: ingest, contract, spec, import, outcomes, monitor by chunks."
    d, store = SETS[task], cwd / 'store'
    m, folder = d['model'], DATA / d['folder']
    for key, name in (('reference', 'ref.csv'), ('analysis', 'ana.csv'), ('targets', 'gt.csv')):
        pd.read_csv(folder / d[key]).iloc[::EVERY].to_csv(cwd / name, index=False)
    run('ingest', f'{m}_ref', cwd / 'ref.csv', cwd=cwd, store=store)
    run('contract', 'infer', f'{m}_ref@latest', '--name', m, '--key', 'id', '--time-column', 'timestamp', '--exclude', *d['exclude'], cwd=cwd, store=store)
    run('model', 'init', m, '--contract', m, '--target', 'y_true', '--task', task, '--external', '--prediction', 'y_pred', cwd=cwd, store=store)
    if task == 'multiclass':   # the classes and their probability columns: what `model init` has no flag for
        f = cwd / f'{m}.spec.yaml'
        f.write_text(yaml.safe_dump({**yaml.safe_load(f.read_text()), 'classes': CLASSES, 'scores': PROBA}, sort_keys=False))
        run('model', 'register', f, cwd=cwd, store=store)
    assert 'imported 6,000 answers' in run('predictions', 'import', m, cwd / 'ana.csv', cwd=cwd, store=store)
    assert 'recorded 6,000 outcomes' in run('outcomes', cwd / 'gt.csv', cwd=cwd, store=store)
    run('monitor', '--model', m, '--chunk-rows', CHUNK, cwd=cwd, store=store)
    return store


@pytest.fixture(scope='module')
def price(tmp_path_factory):
    return monitored(tmp_path_factory.mktemp('price'), 'regression')


@pytest.fixture(scope='module')
def cards(tmp_path_factory):
    return monitored(tmp_path_factory.mktemp('cards'), 'multiclass')


def use(store: Path, settings_file: Path):
    "Point the test's settings at `store` (reports not logged to MLflow)."
    settings_file.write_text(f'[store]\nroot = {store}\n[reports]\nlog_to_mlflow = false\n', encoding='utf-8')


def texts(obj) -> str:
    "Every text a rendered Panel view holds (Markdown and HTML panes, through columns and rows), and its figures' titles and axis labels."
    import matplotlib.figure
    out = []
    def walk(o):
        for x in getattr(o, 'objects', None) or []: walk(x)
        v = getattr(o, 'object', None)
        if isinstance(v, str): out.append(v)
        elif isinstance(v, matplotlib.figure.Figure):
            for ax in v.axes:
                out.extend([ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.get_yticklabels()])
                if ax.get_legend(): out.extend(t.get_text() for t in ax.get_legend().get_texts())
    walk(obj)
    return '\n'.join(out)


def dashboard_texts(store: Path):
    from wildproof.dashboards import DashboardData, DriftDashboard
    d = DriftDashboard(DashboardData(store))
    views = {v.__name__: v() for v in (d.heatmap, d.distribution, d.service, d.business, d.predictions, d.performance, d.alerts)}
    return d, {k: texts(v) for k, v in views.items()}


@needs_data
def test_the_regression_dashboard_shows_mae_and_rmse_realized_beside_estimated_and_the_value_drift(price, settings_file):
    use(price, settings_file)
    d, t = dashboard_texts(price)
    assert d.model == 'car_price_deployed' and d.granularity == f'{CHUNK} rows' and d._task() == 'regression'
    assert len(d.param.start.objects) == 4 and d.start < d.end                     # one window per chunk, named by its first event time
    perf = t['performance']
    assert 'MAE realized' in perf and 'MAE estimated' in perf and 'MAE band' in perf and 'RMSE estimated' in perf
    assert 'realized MAE on matured cohorts beside the estimate (lower is better)' in perf and '± 3 sampling errors' in perf
    assert "the predicted value's drift" in t['predictions'] and '(predicted value)' in t['predictions'] + t['heatmap']
    assert 'predicted value: reference against' in t['predictions']
    assert 'mean outcome' in t['business']
    everything = '\n'.join(t.values())
    assert 'ROC AUC' not in everything and 'roc_auc' not in everything and 'accuracy' not in everything
    # the band in the table is the estimate ± 3 sampling errors, as stored
    from wildproof.dashboards import performance_table
    m = d._metrics()
    est = m[(m.family == 'estimated') & (m.metric == 'mae')].iloc[-1]
    se = json.loads(est.detail_json)['sampling_error']
    row = performance_table(m, 'regression', d.granularity).iloc[-1]
    assert row['MAE band'] == f'{est.value - 3 * se:.4g} to {est.value + 3 * se:.4g}' and se > 0
    # the whole layout renders (as JupyterLab or the server would)
    import panel as pn
    assert isinstance(pn.panel(d), pn.Row)


@needs_data
def test_the_multiclass_dashboard_shows_accuracy_macro_f1_and_the_class_mix(cards, settings_file):
    use(cards, settings_file)
    d, t = dashboard_texts(cards)
    assert d.model == 'card_product_deployed' and d._task() == 'multiclass'
    perf = t['performance']
    for k in ('accuracy realized', 'accuracy estimated', 'macro F1 realized', 'macro F1 estimated', 'realized macro F1 on matured cohorts'):
        assert k in perf, k
    assert 'class mix' in t['predictions'] and all(c in t['predictions'] for c in CLASSES)
    assert '(predicted class)' in t['heatmap'] and '(probability upmarket_card)' in t['heatmap']
    assert 'class mix' in t['business'] and 'upmarket_card: actual, known so far' in t['business']
    assert 'MAE' not in '\n'.join(t.values())
    # the shift of the second half shows as flagged chunks
    assert 'estimated accuracy' in perf and 'performance macro F1' in perf


@needs_data
@pytest.mark.parametrize('which', ['regression', 'multiclass'])
def test_the_monitoring_report_of_a_chunk_shows_the_task_metrics(which, price, cards, settings_file):
    "A real papermill run of the monitoring template on the last chunk of each model."
    from wildproof import reports
    from wildproof.store import Store
    store = price if which == 'regression' else cards
    use(store, settings_file)
    model = SETS[which]['model']
    row = reports.run_report('monitoring', dict(model=model, granularity=f'{CHUNK} rows'), store=Store(store))
    assert row['status'] == 'ok', row.get('error')
    folder = Path(row['path'])
    html = (folder / 'monitoring.html').read_text()
    s = json.loads((folder / 'summary.json').read_text())
    assert s['verdict'] == 'alert'                                   # the second half shifts
    assert 'ROC AUC' not in html and 'roc_auc' not in html if which == 'regression' else True
    if which == 'regression':
        assert 'MAE realized' in html and 'MAE estimated' in html and 'RMSE band' in html and '(predicted value)' in html
        assert s['metrics']['estimated.mae'] > 0 and 'performance.roc_auc' not in s['metrics']
    else:
        assert 'macro F1 realized' in html and 'accuracy estimated' in html and '(predicted class)' in html
        assert 0 < s['metrics']['performance.macro_f1'] < 1 and 'estimated.mae' not in s['metrics']
    # the same chunk again: recognised, not run again; the dashboard's table of reports shows the task's headline figures
    assert reports.run_report('monitoring', dict(model=model, granularity=f'{CHUNK} rows', window=s['window_start']), store=Store(store))['status'] == 'exists'
    from wildproof.dashboards import _headline
    assert ('estimated.mae' if which == 'regression' else 'performance.macro_f1') in _headline(s) or 'flagged' in _headline(s)


def test_an_evaluation_slice_section_plots_the_primary_metric_of_its_task():
    "Small synthetic frames: a regression's slices by MAE-family metrics with intervals, a multiclass model's by log loss; no ROC AUC for the regression."
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from wildproof import reports
    from wildproof.evaluation import evaluate
    g = np.random.default_rng(0)
    n = 600
    d = pd.DataFrame(dict(x=g.normal(size=n), colour=g.choice(['red', 'blue'], n)))
    d['y'] = 3 * d.x + g.normal(size=n) * np.where(d.colour == 'red', 2, 1)      # red is noisier: a larger error
    d['k'] = np.where(d.x > 0.5, 'high', np.where(d.x < -0.5, 'low', 'mid'))
    pre = lambda: make_column_transformer((OneHotEncoder(), ['colour']), remainder='passthrough')
    reg = make_pipeline(pre(), LinearRegression()).fit(d[['x', 'colour']], d.y)
    e = evaluate(reg, d[['x', 'colour', 'y']], task='regression', target='y', slices=['colour'], measure_cost=False)
    fig, table = reports.slice_section(e, 'prices v1')
    ax = fig.axes[0]
    assert ax.get_title() == 'prices v1: RMSE by slice (lower is better)' and 'RMSE (95% interval)' == ax.get_xlabel()
    assert 'MAE interval' in table and 'ROC AUC' not in table + ax.get_title()
    red = next(s for s in e.slices if s['name'] == 'colour = red')
    assert red['rmse_ci'][0] < red['rmse'] < red['rmse_ci'][1] and red['rmse'] > next(s for s in e.slices if s['name'] == 'colour = blue')['rmse']
    assert set(reports._overall_names('regression', e.info)) == {'rmse', 'mae', 'r2', 'mean_error'}
    mc = make_pipeline(pre(), LogisticRegression()).fit(d[['x', 'colour']], d.k)
    e = evaluate(mc, d[['x', 'colour', 'k']], task='multiclass', target='k', slices=['colour'], measure_cost=False)
    fig, table = reports.slice_section(e, 'tiers v1')
    assert fig.axes[0].get_title() == 'tiers v1: log loss by slice (lower is better)' and 'accuracy interval' in table and 'macro ROC AUC' in table
