"""Reports: parameterized notebook templates, run by papermill into versioned, immutable folders, indexed in the store.

Two halves. The *views* (`build` and the `Report` it returns) are what a template's cells call: each kind gathers its
evidence from the store, shows it in sections and saves a machine-readable summary. The *runner* (`run_report`)
resolves a kind's parameters to exact inputs, recognises a rerun of the same inputs, executes the template with
papermill in a private folder and moves the finished folder into place in one rename, so that a report folder is
either complete or absent. A failed run keeps its partial notebook in a folder marked as failed, is indexed as
failed and opens an alert. Plain module: the narrative is the templates themselves (`wildproof/templates/`).
"""
from __future__ import annotations

import hashlib, json, os, shutil, time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import wildproof
from .settings import WildproofError, load_settings
from .store import Store, new_id, utcnow
from .monitoring import chunked as _chunked, window_label
from .spec import metric_label as _metric_label

KINDS = ('validation', 'evaluation', 'monitoring', 'model_card')
TEMPLATES = Path(__file__).parent / 'templates'
COMMON = ('store', 'settings')   # parameters every template takes; the runner sets them
ENGINE_KINDS = ('validation', 'monitoring')   # the kinds that may compute (a batch not validated yet, a window not computed yet): they take `engine`


class ReportError(WildproofError):
    "A report cannot be made as asked: unknown kind, parameter, model, version or data."


def _store(store) -> Store:
    if isinstance(store, Store): return store
    return Store(store) if store else Store.from_settings()


def template(kind: str) -> Path:
    "The template notebook of `kind`."
    if kind not in KINDS: raise ReportError(f'unknown report kind {kind!r} (kinds: {", ".join(KINDS)})')
    return TEMPLATES / f'{kind}.ipynb'


def template_parameters(kind: str) -> dict:
    "The parameters a template declares, with their defaults and help (from its cell tagged `parameters`)."
    import papermill as pm
    return {k: dict(default=v['default'], help=v['help']) for k, v in pm.inspect_notebook(str(template(kind))).items()}


def engine_of(engine: str = '', settings=None) -> str:
    "The engine a report computes on: `engine` (duckdb or spark), else `[engine] kind` of the settings."
    from .engine import KINDS, EngineError, engine_kind
    try: return engine_kind(settings or load_settings(), engine or None)
    except EngineError: raise ReportError(f'engine={engine!r}: the engine is {" or ".join(KINDS)} (empty: [engine] kind of settings.ini)') from None


def run_engine(row: dict) -> str | None:
    "The engine a report run had in force (its summary says), or None for a run without one (other kinds, runs made before engines)."
    try: return json.loads(row.get('summary_json') or '{}').get('engine')
    except (TypeError, ValueError): return None


def _engine_note(engine: str) -> str:
    return (f'Engine: {engine} (where this report computes what the store did not hold yet; both engines give the same results, '
            f'so a report is identified by its inputs, not its engine: decision 0018).')


def _sha(data) -> str:
    b = data if isinstance(data, bytes) else json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- the views: what a template shows and summarises
@dataclass
class Report:
    "What one report shows: a title, sections (HTML, frames or figures) and a summary (metrics, verdict, alerts) saved as JSON."
    kind: str
    title: str
    summary: dict
    sections: dict = field(default_factory=dict)   # name -> list of displayable objects

    def show(self, section: str | None = None):
        "Display one section (or the header when `section` is None) in the notebook."
        from IPython.display import HTML, display
        if section is None:
            s = self.summary
            colour = {'ok': '#1a7f37', 'passed': '#1a7f37', 'accepted': '#1a7f37', 'no data': '#6e7781'}.get(str(s['verdict']).lower(), '#cf222e')
            display(HTML(f'<h2>{self.title}</h2><p><b style="color:{colour}">{str(s["verdict"]).upper()}</b> '
                         f'&middot; {len(s["alerts"])} alert(s) raised for this window'
                         + (f' &middot; {len(s["flagged"])} metric(s) flagged' if s.get('flagged') else '') + '</p>'
                         + ''.join(f'<p>{n}</p>' for n in s.get('notes', []))))
            return
        if section not in self.sections: raise ReportError(f'report {self.kind} has no section {section!r} (sections: {", ".join(self.sections)})')
        for obj in self.sections[section]: display(HTML(obj) if isinstance(obj, str) else obj)

    def save(self, path: str | Path = 'summary.json') -> Path:
        "Write the summary as JSON (the runner reads it back; `wildproof report diff` compares two)."
        p = Path(path)
        p.write_text(json.dumps(self.summary, indent=1, sort_keys=True, default=str) + '\n', encoding='utf-8')
        return p


def _summary(kind, *, model, version, name, verdict, metrics=None, alerts=(), status='ok', notes=(), **extra) -> dict:
    m = {k: (None if v is None or (isinstance(v, float) and v != v) else float(v)) for k, v in (metrics or {}).items()}
    return dict(kind=kind, model=model, version=None if version is None else str(version), name=name, status=status, verdict=verdict,
                metrics=m, alerts=sorted(alerts), notes=list(notes), **extra)


def _fig_close(fig):
    import matplotlib.pyplot as plt
    plt.close(fig)
    return fig


def _model(store: Store, model: str) -> str:
    if model: return model
    names = store.sql('select distinct model from models order by 1').model.tolist()
    if len(names) == 1: return names[0]
    raise ReportError('name the model: ' + (f'the store holds {", ".join(names)}' if names else 'the store holds no model'))


def _version(store: Store, model: str, version: str, settings=None) -> str:
    "A version number, or the version an alias (production, staging, candidate) points at; a clear error when there is none."
    from .registry import alias_version, model_info
    from .training import model_version
    model_info(store, model)   # an unknown model is a clear error
    v = str(version).removeprefix('v') if version not in (None, '') else 'production'
    if not v.isdigit():
        num = alias_version(store, model, v)
        if num is None: raise ReportError(f'model {model!r} has no version with the alias {v!r}')
        v = str(num)
    try: model_version(store, model, v, settings)
    except WildproofError as e: raise ReportError(str(e)) from None
    return v


# validation --------------------------------------------------------------------------------------------------------
def _validation_inputs(store: Store, snapshot: str, contract: str, settings=None, engine: str = ''):
    "The batch, its contract and its recorded validation (made now on `engine` when there is none)."
    from .contracts import ContractError, get_contract, latest_validation, validate
    from .datasets import DataError, get_snapshot
    if not snapshot:
        last = store.sql('select snapshot_id, contract from validations order by created_at desc limit 1')
        if not len(last): raise ReportError('no batch has been validated yet: name a snapshot')
        snapshot, contract = last.snapshot_id.iloc[0], contract or last.contract.iloc[0]
    try: snap = get_snapshot(store, snapshot)
    except (DataError, WildproofError) as e: raise ReportError(str(e)) from None
    if not contract:
        c = store.sql('select contract from validations where snapshot_id = $s order by created_at desc limit 1', dict(s=snap.snapshot_id))
        if not len(c): raise ReportError(f'snapshot {snap.snapshot_id} has not been validated: name the contract to validate it against')
        contract = c.contract.iloc[0]
    try: con = get_contract(store, contract)
    except (ContractError, WildproofError) as e: raise ReportError(str(e)) from None
    val = latest_validation(store, snap.snapshot_id, con) or validate(store, snap.snapshot_id, con, settings=settings, engine=engine_of(engine, settings))
    return snap, con, val


def validation_report(store='', snapshot: str = '', contract: str = '', engine: str = '') -> Report:
    store = _store(store)
    engine = engine_of(engine)
    snap, con, v = _validation_inputs(store, snapshot, contract, engine=engine)
    failing = {f'{r["rule"]} {r["column"] or ""}'.strip(): r['failed'] for r in v.rules if r['failed']}
    s = _summary('validation', model=con.name, version=con.version, name=snap.snapshot_id, verdict=v.status,
                 metrics=dict(rows_in=v.rows_in, rows_accepted=v.rows_accepted, rows_quarantined=v.rows_quarantined,
                              rows_rejected=v.rows_rejected, quarantine_share=v.quarantine_share, **{f'failing.{k}': n for k, n in failing.items()}),
                 alerts=[f'validation.{v.status}: {p}' for p in v.problems] if not v.ok else [], status='ok' if v.rows_in else 'no data',
                 notes=[f'Batch <code>{snap.snapshot_id}</code> of {snap.dataset} ({snap.rows:,} rows, content {snap.content_hash[:12]}) '
                        f'against contract <code>{con.name} v{con.version}</code>.', _engine_note(engine)],
                 snapshot=snap.snapshot_id, contract=f'{con.name} v{con.version}', validation_id=v.validation_id, engine=engine)
    q = v.quarantined() if v.rows_quarantined else pd.DataFrame()
    by_rule = (q.groupby(['rule', 'column']).size().rename('rows').reset_index().sort_values('rows', ascending=False) if len(q) else q)
    sec = dict(outcome=[v], quarantine=[by_rule.to_html(index=False) if len(q) else '<p>No row was quarantined.</p>',
                                         q.head(20).to_html(index=False) if len(q) else ''])
    if failing:
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(failing) + 1))
        ax.barh(list(failing), list(failing.values()), color='#cf222e'); ax.set_xlabel('rows failing'); ax.invert_yaxis()
        ax.set_title('rows failing each rule'); fig.tight_layout()
        sec['quarantine'].insert(0, _fig_close(fig))
    return Report('validation', f'Validation of {snap.snapshot_id}', s, sec)


# evaluation --------------------------------------------------------------------------------------------------------
# The fairness gaps a summary keeps, per task (as the evaluation measures them)
GAPS = dict(binary=('equalized_odds_difference', 'demographic_parity_difference'),
            regression=('mae_gap', 'mean_error_gap'), multiclass=('accuracy_gap', 'macro_f1_gap', 'recall_gap'))
LOWER = {'brier', 'log_loss', 'rmse', 'mae', 'abs_mean_error'}


def _overall_names(task: str, info: dict | None = None) -> tuple:
    "The overall metrics a summary of `task` keeps: binary as ever (ROC AUC, PR AUC, Brier, log loss); else the evaluation's own."
    from .evaluation import OVERALL_METRICS
    if task == 'binary': return ('roc_auc', 'pr_auc', 'brier', 'log_loss')
    return tuple((info or {}).get('metrics') or OVERALL_METRICS[task])


def _slice_metric(info: dict, slices: list) -> str:
    "The metric the slice plot shows: the spec's primary metric when the slices have it, else the first slice metric (binary: ROC AUC)."
    have = list(info.get('slice_metrics') or ['roc_auc'])
    pm = info.get('primary_metric')
    if pm in have and any(x.get(pm) is not None for x in slices): return pm
    return next((m for m in have if any(x.get(m) is not None for x in slices)), have[0])


def _gated(store: Store, model: str, version: str, settings=None):
    "The version (empty: the one gated last), its gate verdict and the evaluation file the gate judged."
    from .registry import latest_verdict
    if not version:
        last = store.sql("select version from verdicts where model = $m and kind = 'gate' order by created_at desc limit 1", dict(m=model))
        if not len(last): raise ReportError(f'no version of {model!r} has been gated yet')
        version = last.version.iloc[0]
    version = _version(store, model, version, settings)
    g = latest_verdict(store, model, version, 'gate')
    f = Path(g.evidence.get('evaluation_file', '')) if g is not None else None
    if g is None or not f.is_file(): raise ReportError(f'{model} v{version} has not been evaluated and gated: nothing to report')
    return version, g, f


def slice_section(ev, title: str) -> list:
    """The slices of an evaluation: the primary metric of its task per slice with its interval (binary: ROC AUC), the overall
    value as a line; for a regression or multiclass model also every slice metric as a table."""
    metric = _slice_metric(ev.info, ev.slices)
    name = _metric_label(metric)
    sl = [x for x in ev.slices if x.get(metric) is not None]
    out = []
    if sl:
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 0.32 * len(sl) + 1))
        val = [x[metric] for x in sl]
        ci = [x.get(f'{metric}_ci') or [a, a] for a, x in zip(val, sl)]
        err = [[a - c[0] for a, c in zip(val, ci)], [c[1] - a for a, c in zip(val, ci)]]
        ax.errorbar(val, range(len(sl)), xerr=err, fmt='o', color='#0969da')
        if ev.overall.get(metric) is not None: ax.axvline(ev.overall[metric], color='#6e7781', ls='--', label='overall')
        conf = (ev.info.get('settings') or {}).get('confidence', 0.95)
        ax.set_yticks(range(len(sl)), [x['name'] for x in sl]); ax.invert_yaxis(); ax.set_xlabel(f'{name} ({conf:.0%} interval)'); ax.legend()
        ax.set_title(f'{title}: {name} by slice' + (' (lower is better)' if metric in LOWER else '')); fig.tight_layout()
        out = [_fig_close(fig)]
        if ev.info.get('task', 'binary') != 'binary':   # the figures of each slice, as a table beside the plot
            cols = ['name', 'support'] + [c for m in (ev.info.get('slice_metrics') or [metric]) for c in (m, f'{m}_ci')] + ['note']
            t = pd.DataFrame([{c: x.get(c) for c in cols} for x in ev.slices])
            t = t.rename(columns={c: _metric_label(c.removesuffix('_ci')) + (' interval' if c.endswith('_ci') else '') for c in cols if c not in ('name', 'support', 'note')})
            fmt = lambda v: f'{v[0]:.4g} to {v[1]:.4g}' if isinstance(v, list) and len(v) == 2 else (f'{v:.4g}' if isinstance(v, float) else ('' if v is None else v))
            out.append(t.map(fmt).to_html(index=False))
    else: out = ['<p>No slice has both classes.</p>' if ev.info.get('task', 'binary') == 'binary' else f'<p>No slice has a {name}.</p>']
    return out


def evaluation_report(store='', model: str = '', version: str = '') -> Report:
    from .evaluation import Evaluation
    store = _store(store)
    model = _model(store, model)
    version, g, f = _gated(store, model, version)
    ev = Evaluation.from_dict(json.loads(f.read_text()))
    o, task = ev.overall, ev.info.get('task') or 'binary'
    gaps = {f'fairness.{a}.{k}': v.get(k) for a, v in (ev.fairness or {}).items() for k in GAPS[task]}
    s = _summary('evaluation', model=model, version=version, name=g.verdict_id, verdict='passed' if g.passed else 'failed',
                 metrics={k: o.get(k) for k in _overall_names(task, ev.info)} | gaps,
                 alerts=[f'{x["section"]}: {x["subject"]}' for x in ev.flags], notes=[f'{g.risk_tier} risk tier gate: ' + '; '.join(g.reasons[:3])],
                 reasons=g.reasons, rows=ev.info.get('rows'), task=task)
    sec = dict(gate=[g], evaluation=[ev], slices=slice_section(ev, f'{model} v{version}'))
    return Report('evaluation', f'Evaluation of {model} v{version}', s, sec)


# monitoring --------------------------------------------------------------------------------------------------------


def _chunk_inputs(store: Store, model: str, version: str, window, granularity: str) -> tuple:
    "A chunk of rows (`monitor --chunk-rows`): the one starting at `window` (its first event time), or the latest; its stored metrics."
    from .monitoring import metrics
    m = metrics(store, model, granularity=granularity)
    if not len(m): raise ReportError(f'{model} has no chunks of {granularity}: run `wildproof monitor --model {model} --chunk-rows {granularity.split()[0]}` first')
    m['window_start'] = pd.to_datetime(m.window_start, utc=True)
    try: start = m.window_start.max() if window in (None, '') else pd.Timestamp(window).tz_localize('UTC') if pd.Timestamp(window).tzinfo is None else pd.Timestamp(window).tz_convert('UTC')
    except ValueError: raise ReportError(f'{window!r} is not a time: name a chunk by its first event time') from None
    m = m[m.window_start == start]
    if not len(m): raise ReportError(f'no chunk of {granularity} of {model} starts at {start}')
    if version: m = m[m.version == str(version).removeprefix('v')]
    return start, pd.Timestamp(m.window_end.max() if len(m) else start), m


def _monitored_model(store: Store, model: str) -> None:
    "A clear error for a model the store does not know: one in the inventory, or one that runs elsewhere (a spec, and monitored)."
    from .registry import model_info
    try: model_info(store, model)
    except WildproofError:
        try: known = len(store.sql('select 1 from specs where model = $m limit 1', dict(m=model), tables=['specs'])) > 0
        except Exception: known = False
        if not known: raise


def _monitoring_inputs(store: Store, model: str, version: str, window, granularity: str, as_of, settings, engine: str = '') -> tuple:
    "The window and its stored metrics (computed first, on `engine`, when the window has predictions but no metrics yet); a chunk of rows as stored."
    from .monitoring import MonitoringError, metrics, monitor, window_of
    _monitored_model(store, model)
    if _chunked(granularity): return _chunk_inputs(store, model, version, window, granularity)
    try:
        if window in (None, ''):   # the latest window with metrics, else the last complete window by the clock
            last = store.sql('select max(window_start) as s from metrics where model = $m and granularity = $g', dict(m=model, g=granularity)).s.iloc[0]
            start, end = window_of(last if last is not None and not pd.isna(last) else
                                   window_of(pd.Timestamp(as_of or utcnow()), granularity)[0] - pd.Timedelta(seconds=1), granularity)
        else: start, end = window_of(window, granularity)
    except MonitoringError as e: raise ReportError(str(e)) from None
    m = metrics(store, model, granularity=granularity)
    m = m[pd.to_datetime(m.window_start, utc=True) == start]
    if not len(m):
        n = store.sql("select count(*) as n from predictions where model = $m and route <> 'shadow' and coalesce(event_time, created_at) >= $s "
                      "and coalesce(event_time, created_at) < $e", dict(m=model, s=start, e=end)).n.iloc[0]
        if n:
            monitor(store, model, window=start, as_of=as_of or None, granularity=granularity, settings=settings, progress=False,
                    engine=engine_of(engine, settings))
            m = metrics(store, model, granularity=granularity)
            m = m[pd.to_datetime(m.window_start, utc=True) == start]
    if version and len(m): m = m[m.version == str(version).removeprefix('v')]
    return start, end, m


def _window_version(store: Store, model: str, m: pd.DataFrame, version: str) -> str:
    "The version a window is reported under: the one that answered most of it, else the one asked for, else production's."
    if len(m): return str(m.version.mode().iloc[0])
    from .registry import alias_version
    return str(version or alias_version(store, model, 'production') or 'none').removeprefix('v')


def monitoring_report(store='', model: str = '', version: str = '', window: str = '', granularity: str = '', as_of: str = '',
                      engine: str = '') -> Report:
    from .monitoring import alerts as all_alerts
    st = load_settings()
    engine = engine_of(engine, st)
    store = _store(store)
    model = _model(store, model)
    g = granularity or st.monitoring.window
    start, end, m = _monitoring_inputs(store, model, version, window, g, as_of or None, st, engine)
    label = window_label(start, g, path=True)
    title = f'Monitoring of {model}, ' + (f'the chunk of {g} from {pd.Timestamp(start):%Y-%m-%d %H:%M:%S}' if _chunked(g) else f'{g} {label}')
    ver = _window_version(store, model, m, version)
    if not len(m):
        s = _summary('monitoring', model=model, version=ver, name=label, verdict='no data', status='no data',
                     notes=[f'No data: {model} answered no request in the {g} from {start:%Y-%m-%d} to {end:%Y-%m-%d}.'],
                     window_start=start.isoformat(), window_end=end.isoformat(), engine=engine)
        nothing = ['<p>No data in this window.</p>']
        return Report('monitoring', title, s, dict(drift=nothing, performance=nothing, service=nothing, alerts=nothing))
    val = {(f'{r.family}.{r.metric}' + (f'[{r.subject}]' if r.subject else '')): r.value for r in m.itertuples()}
    al = all_alerts(store, model=model)
    al = al[pd.to_datetime(al.window_start, utc=True) == start] if len(al) else al
    names = [f'{r.rule}' + (f' {r.subject}' if r.subject else '') for r in al.itertuples()]
    severe = m.status.isin(['alert', 'investigate']).any()
    s = _summary('monitoring', model=model, version=ver, name=label, verdict='alert' if severe else ('watch' if (m.status == 'watch').any() else 'ok'),
                 metrics=val, alerts=names, window_start=start.isoformat(), window_end=end.isoformat(), as_of=str(m.as_of.max()),
                 flagged=sorted(f'{r.family}.{r.metric}' + (f'[{r.subject}]' if r.subject else '') for r in m.itertuples() if r.status in ('alert', 'investigate')),
                 notes=[f'{model} v{ver}, {g} from {start:%Y-%m-%d} to {end:%Y-%m-%d}, computed as of {pd.Timestamp(m.as_of.max()):%Y-%m-%d %H:%M}.',
                        _engine_note(engine)], engine=engine)
    import matplotlib.pyplot as plt
    d = m[(m.family == 'data_drift') & (m.metric == 'psi')].sort_values('value')
    pal = {'stable': '#1a7f37', 'watch': '#bf8700', 'alert': '#cf222e'}
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(d) + 1.2))
    ax.barh(d.subject, d.value, color=[pal.get(x, '#6e7781') for x in d.status])
    for t, c in ((st.monitoring.psi_watch, '#bf8700'), (st.monitoring.psi_alert, '#cf222e')): ax.axvline(t, color=c, ls='--', lw=1)
    ax.set_xlabel('PSI against the reference'); ax.set_title(f'data drift, {label}'); fig.tight_layout()
    fmt = lambda x: f'{x:.4g}' if isinstance(x, float) else x
    table = lambda fam: m[m.family.isin(fam)][['family', 'metric', 'subject', 'value', 'status']].fillna('').to_html(index=False, float_format=fmt)
    # drift: one row per feature (and the score), one column per statistic
    dr = m[m.family.isin(['data_drift', 'prediction_drift'])]
    wide = dr.pivot_table(index='subject', columns='metric', values='value', aggfunc='first').reindex(
        columns=[c for c in ('psi', 'js', 'ks', 'ks_p_value', 'chi2', 'chi2_p_value', 'missing_current', 'unseen_share', 'positive_rate') if c in set(dr.metric)])
    wide.insert(0, 'status', dr[dr.metric == 'psi'].set_index('subject').status.reindex(wide.index))
    wide = wide.sort_values('psi', ascending=False) if 'psi' in wide else wide
    task = _monitoring_task(store, model, m)
    if task != 'binary':   # the prediction's rows named for what they are: a regression's value, a class, a class's probability
        from .dashboards import prediction_subject
        pred = set(dr[dr.family == 'prediction_drift'].subject)
        wide.index = [prediction_subject(x, task) if x in pred else x for x in wide.index]
        wide.index.name = 'subject'
    sec = dict(drift=[_fig_close(fig), wide.reset_index().fillna('').to_html(index=False, float_format=fmt)],
               performance=(_task_performance(m, task, g, label) if task != 'binary' else []) + [table(['performance', 'estimated', 'business'])],
               service=[table(['service', 'gate'])],
               alerts=[al[['rule', 'subject', 'severity', 'state', 'message', 'actor', 'created_at']].to_html(index=False) if len(al) else '<p>No alert for this window.</p>'])
    return Report('monitoring', title, s, sec)


def _monitoring_task(store: Store, model: str, m: pd.DataFrame) -> str:
    "The task of a window's model: from the figures monitoring wrote, else from the model's latest spec, else binary."
    from .dashboards import metrics_task
    t = metrics_task(m)
    if t: return t
    try: r = store.sql('select task from specs where model = $m order by version desc limit 1', dict(m=model), tables=['specs'])
    except Exception: return 'binary'
    return str(r.task.iloc[0]) if len(r) and r.task.iloc[0] else 'binary'


def _task_performance(m: pd.DataFrame, task: str, granularity: str, label: str, bands: float = 3.0) -> list:
    """A regression's MAE and RMSE, a multiclass model's accuracy and macro F1, of one window: realized on the outcomes known so far
    beside the estimate made without them, with a band of `bands` sampling errors where monitoring gives one, and the reference."""
    import matplotlib.pyplot as plt
    from .dashboards import _detail, performance_table
    from .monitoring import JUDGED
    names = [k for k in JUDGED[task] if ((m.family.isin(['performance', 'estimated'])) & (m.metric == k)).any()]
    if not names: return ['<p>No performance figure in this window: no outcome known and no estimate.</p>']
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.5 * len(names) + 0.6), squeeze=False)
    for ax, k in zip(axes[:, 0], names):
        row = lambda fam: m[(m.family == fam) & (m.metric == k) & (m.subject.fillna('') == '')]
        real, est = row('performance'), row('estimated')
        ref = None
        for fam, r, y, colour in (('realized (outcomes known so far)', real, 1, '#0969da'), ('estimated (without outcomes)', est, 0, '#8250df')):
            if not len(r) or r.value.iloc[0] is None or pd.isna(r.value.iloc[0]): continue
            v, d = float(r.value.iloc[0]), _detail(r.detail_json.iloc[0])
            se = d.get('sampling_error')
            ax.errorbar([v], [y], xerr=None if se is None else [[bands * se], [bands * se]], fmt='o', color=colour, capsize=4,
                        label=fam + (f', ± {bands:g} sampling errors' if se is not None else ''))
            ref = ref if ref is not None else d.get('threshold', d.get('reference'))
        if ref is not None: ax.axvline(ref, color='#6e7781', ls='--', lw=1, label='threshold' if 'threshold' in _detail(est.detail_json.iloc[0] if len(est) else None) else 'reference')
        ax.set_yticks([0, 1], ['estimated', 'realized']); ax.set_ylim(-0.6, 1.6); ax.set_xlabel(_metric_label(k) + (' (lower is better)' if k in LOWER else ''))
        ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
    axes[0, 0].set_title(f'{", ".join(_metric_label(k) for k in names)}: realized and estimated, {label}'); fig.tight_layout()
    t = performance_table(m, task, granularity, bands=bands).drop(columns='window', errors='ignore')
    return [_fig_close(fig), t.to_html(index=False)]


# model card --------------------------------------------------------------------------------------------------------
def model_card_report(store='', model: str = '', version: str = 'production') -> Report:
    from .cards import Card
    store = _store(store)
    model = _model(store, model)
    version = _version(store, model, version)
    c = Card(store, model, version)
    d = c.data
    o = (d['evaluation'] or {}).get('overall') or {}
    task = (d['evaluation'] or {}).get('task') or (d.get('spec') or {}).get('task') or 'binary'
    verdict = 'no gate' if d['gate'] is None else ('passed' if d['gate']['passed'] else 'failed')
    s = _summary('model_card', model=model, version=version, name=f'v{version}', verdict=verdict,
                 metrics={k: o.get(k) for k in (('roc_auc', 'pr_auc', 'brier') if task == 'binary' else _overall_names(task))},
                 alerts=[] if d['gate'] is None or d['gate']['passed'] else ['gate failed'],
                 notes=[f'Stage {d["stage"]}, {d["risk_tier"]} risk, owner {d["owner"]}; '
                        + ('in production.' if d['in_production'] else 'not in production.')],
                 stage=d['stage'], in_production=d['in_production'], approvals=[f'{a["approver"]} ({a["role"]})' for a in d['approvals']])
    return Report('model_card', f'Model card of {model} v{version}', s, dict(card=[c]))


BUILDERS = dict(validation=validation_report, evaluation=evaluation_report, monitoring=monitoring_report, model_card=model_card_report)


@contextmanager
def _settings_file(path: str):
    "Every settings lookup inside the block reads `path` (through WILDPROOF_SETTINGS); empty: as before."
    if not path: yield; return
    if not Path(path).is_file(): raise ReportError(f'settings file {path} not found')
    old = os.environ.get('WILDPROOF_SETTINGS')
    os.environ['WILDPROOF_SETTINGS'] = str(path)
    try: yield
    finally:
        if old is None: os.environ.pop('WILDPROOF_SETTINGS', None)
        else: os.environ['WILDPROOF_SETTINGS'] = old


def build(kind: str, settings: str = '', **params) -> Report:
    """The report of `kind` for `params` (what a template's second cell calls). `settings`: the settings file the runner used.
    A report's kernel starts in the report's own folder, where looking for settings.ini from the working directory could
    find another file or none; the registry and MLflow look settings up deep inside, so the file is put in force for the build."""
    if kind not in BUILDERS: raise ReportError(f'unknown report kind {kind!r} (kinds: {", ".join(KINDS)})')
    with _settings_file(settings): return BUILDERS[kind](**params)


# ---------------------------------------------------------------- the runner: versioned, immutable, indexed
def reports_root(store: Store, settings=None) -> Path:
    st = settings or load_settings()
    return Path(st.reports.root) if st.reports.root else store.root / 'reports'


def _resolve(kind: str, store: Store, p: dict, st) -> dict:
    """Exact inputs of a run: model, version and name of its folder, resolved parameters, hashes of the data it reads. What the
    store does not hold yet (a batch's validation, a window's metrics) is computed here, on the run's engine; the engine is not
    part of the parameters that identify a run (the results are the same on both), the runner records it beside them."""
    if kind == 'validation':
        snap, con, v = _validation_inputs(store, p.get('snapshot', ''), p.get('contract', ''), st, p.get('engine', ''))
        return dict(model=con.name, version=str(con.version), name=snap.snapshot_id, params=dict(snapshot=snap.snapshot_id, contract=con.name),
                    inputs=dict(snapshot=snap.content_hash, contract=con.content_hash(), validation=v.validation_id))
    if kind == 'evaluation':
        model = _model(store, p.get('model', ''))
        version, g, f = _gated(store, model, p.get('version', ''), st)
        return dict(model=model, version=version, name=g.verdict_id[:12], params=dict(model=model, version=version),
                    inputs=dict(verdict=g.verdict_id, evaluation=_sha(f.read_bytes())))
    if kind == 'monitoring':
        model = _model(store, p.get('model', ''))
        g = p.get('granularity') or st.monitoring.window
        start, end, m = _monitoring_inputs(store, model, p.get('version', ''), p.get('window', ''), g, p.get('as_of') or None, st, p.get('engine', ''))
        rows = m.drop(columns=['as_of', 'detail_json']).sort_values(['family', 'metric', 'subject']).to_dict('records') if len(m) else []
        return dict(model=model, version=_window_version(store, model, m, p.get('version', '')), name=window_label(start, g, path=True),
                    params=dict(model=model, window=start.isoformat(), granularity=g, **({'version': p['version']} if p.get('version') else {})),
                    inputs=dict(metrics=_sha(rows), rows=len(rows)))
    if kind == 'model_card':
        from .cards import card_data
        model = _model(store, p.get('model', ''))
        version = _version(store, model, p.get('version', 'production'), st)
        c = card_data(store, model, version)
        c.pop('generated_at', None)
        return dict(model=model, version=version, name=f'{utcnow():%Y-%m-%d}', params=dict(model=model, version=version), inputs=dict(card=_sha(c)))
    raise ReportError(f'unknown report kind {kind!r} (kinds: {", ".join(KINDS)})')


def index(store: Store, *, kind: str | None = None, model: str | None = None, status: str | None = None, key: str | None = None,
          settings=None) -> pd.DataFrame:
    "Every report run, newest last; `path` is absolute (the index keeps it relative to the reports root, so a copied store stays whole)."
    r = store.sql('''select * from reports where ($k is null or kind = $k) and ($m is null or model = $m) and ($s is null or status = $s)
                       and ($key is null or key = $key) order by created_at''', dict(k=kind, m=model, s=status, key=key))
    root = reports_root(store, settings)
    r['path'] = [str(root / p) for p in r.path]   # an absolute path (a root outside the store) stays as it is
    return r


def get_run(store: Store, run_id: str) -> dict:
    "The index row of a run, by its id or a prefix of it, or by its folder."
    r = index(store)
    hit = r[r.run_id.str.startswith(run_id)] if run_id else r.iloc[0:0]
    if not len(hit): hit = r[r.path == str(Path(run_id).resolve())]
    if len(hit) != 1: raise ReportError(f'no report run {run_id!r}' if not len(hit) else f'{run_id!r} names {len(hit)} runs: give more of the id')
    return hit.iloc[0].to_dict()


def _render_html(nb_path: Path, out: Path):
    import nbformat
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(nbformat.read(nb_path, as_version=4))
    out.write_text(body, encoding='utf-8')


def _log_mlflow(store: Store, st, kind: str, model: str, version: str, folder: Path) -> str | None:
    if kind == 'validation' or not st.reports.log_to_mlflow: return None
    import mlflow
    from .training import mlflow_setup, model_version
    run_id = model_version(store, model, version, st).run_id
    mlflow_setup(store, st)
    mlflow.MlflowClient().log_artifacts(run_id, str(folder), artifact_path=f'reports/{kind}/{folder.name}')
    return run_id


def _alert_failure(store: Store, model: str, kind: str, message: str):
    from .monitoring import open_alert
    open_alert(store, model, 'report.failed', kind, message, actor='reports')


def run_report(kind: str, params: dict | None = None, *, store: Store | None = None, settings=None, actor: str = 'reports') -> dict:
    """Run the template of `kind` with `params` into reports/<kind>/<model>/v<version>/<name>/ (executed notebook, HTML, summary.json).

    A run whose inputs (data hashes, template, wildproof version) match an earlier successful run is not repeated: that run's row
    is returned with `status` 'exists'. A failed run is indexed as failed, keeps its partial notebook in a folder marked FAILED
    and opens an alert."""
    import papermill as pm
    st = settings or load_settings()
    store = store or Store.from_settings(st)
    params = {k: ('' if v is None else str(v)) for k, v in (params or {}).items()}
    declared = template_parameters(kind)
    unknown = sorted(set(params) - set(declared))
    if unknown: raise ReportError(f'unknown parameter{"s" if len(unknown) > 1 else ""} {", ".join(unknown)} for a {kind} report '
                                  f'(parameters: {", ".join(k for k in declared if k not in COMMON)})')
    bad = [k for k in COMMON if k in params]
    if bad: raise ReportError(f'{", ".join(bad)} is set by the runner, not a parameter')
    tpl = template(kind)
    if 'engine' in declared: params['engine'] = engine_of(params.get('engine', ''), st)   # resolved once: the run and its summary name it
    r = _resolve(kind, store, params, st)
    tpl_hash = _sha(tpl.read_bytes())
    key = _sha(dict(kind=kind, params=r['params'], inputs=r['inputs'], template=tpl_hash, wildproof=wildproof.__version__))
    base = reports_root(store, st) / kind / r['model'] / f'v{r["version"]}'
    with store.lock(f'report-{key[:16]}'):
        done = index(store, status='ok', key=key, settings=st)
        if len(done) and Path(done.path.iloc[-1]).is_dir(): return {**done.iloc[-1].to_dict(), 'status': 'exists'}
        from .training import code_version
        code = code_version(Path(__file__).parent)   # recorded with the run, not part of its key: only a new run asks git
        run_id, t0, started = new_id(), time.time(), utcnow()
        work = reports_root(store, st) / '.partial' / key[:16]
        shutil.rmtree(work, ignore_errors=True)   # what a crashed run left: never a result
        work.mkdir(parents=True)
        run_params = {**r['params'], **({'engine': params['engine']} if 'engine' in declared else {})}   # the engine: recorded, not in the key
        row = dict(run_id=run_id, key=key, kind=kind, model=r['model'], version=r['version'], name=r['name'],
                   parameters_json=json.dumps(run_params, sort_keys=True), inputs_json=json.dumps(r['inputs'], sort_keys=True),
                   code_version=json.dumps(code, sort_keys=True), template_hash=tpl_hash, started_at=started, actor=actor)
        error = None
        try:
            pm.execute_notebook(str(tpl), str(work / f'{kind}.ipynb'), parameters={**run_params, 'store': str(store.root), 'settings': str(Path(st.file).resolve()) if st.file else ''},
                                # the kernel starts in `work` (nbclient's resources path); papermill's cwd= would chdir the whole process
                                resources={'metadata': {'path': str(work)}}, progress_bar=False, kernel_name="python3", log_output=False,
                                execution_timeout=st.reports.cell_timeout_seconds, extra_arguments=["--IPKernelApp.log_level=ERROR"])
            if not (work / 'summary.json').is_file(): raise ReportError(f'the {kind} template wrote no summary.json')
            _render_html(work / f'{kind}.ipynb', work / f'{kind}.html')
        except pm.PapermillExecutionError as e: error = f'{e.ename}: {e.evalue}'
        except Exception as e: error = f'{type(e).__name__}: {e}'
        with store.lock(f'report-folder-{kind}-{r["model"]}'):
            n, dest = 1, base / r['name']
            while dest.exists() or (base / f'{dest.name}.FAILED').exists(): n += 1; dest = base / f'{r["name"]}.r{n}'
            if error: dest = dest.with_name(dest.name + '.FAILED')
            dest.parent.mkdir(parents=True, exist_ok=True)
            if error: (work / 'error.txt').write_text(error + '\n', encoding='utf-8')
            os.replace(work, dest)   # one rename: the folder is complete or absent
        for f in dest.iterdir(): f.chmod(0o444)
        row.update(path=str(dest.relative_to(reports_root(store, st))), duration_s=time.time() - t0, created_at=utcnow(), status='failed' if error else 'ok', error=error,
                   summary_json=None if error else (dest / 'summary.json').read_text(encoding='utf-8'))
        if not error:
            try: row['mlflow_run'] = _log_mlflow(store, st, kind, r['model'], r['version'], dest)
            except Exception as e: row['mlflow_run'] = None; row['error'] = f'not logged to MLflow: {type(e).__name__}: {e}'
        store.append('reports', [row])
        store.event('report.failed' if error else 'report', row['path'], actor, run_id=run_id, error=error)
        row['path'] = str(dest)
        if error: _alert_failure(store, r['model'], kind, f'the {kind} report {dest.name} of {r["model"]} v{r["version"]} failed: {error}'[:2000])
    return row


def diff(store: Store, a: str, b: str) -> dict:
    "What changed between two runs of one kind: metrics (before, after, change), verdict, alerts added and cleared."
    ra, rb = get_run(store, a), get_run(store, b)
    if ra['kind'] != rb['kind']: raise ReportError(f'{a} is a {ra["kind"]} report and {b} a {rb["kind"]} report: compare runs of one kind')
    for r in (ra, rb):
        if r['status'] != 'ok': raise ReportError(f'run {r["run_id"][:12]} failed: it has no summary to compare')
    sa, sb = json.loads(ra['summary_json']), json.loads(rb['summary_json'])
    ma, mb = sa['metrics'], sb['metrics']
    rows = []
    for k in sorted(set(ma) | set(mb)):
        x, y = ma.get(k), mb.get(k)
        if x != y: rows.append(dict(metric=k, before=x, after=y, change=None if x is None or y is None else y - x))
    return dict(kind=ra['kind'], a=f'{ra["model"]} v{ra["version"]} {ra["name"]}', b=f'{rb["model"]} v{rb["version"]} {rb["name"]}',
                verdict=(sa['verdict'], sb['verdict']), metrics=pd.DataFrame(rows, columns=['metric', 'before', 'after', 'change']),
                alerts_added=sorted(set(sb['alerts']) - set(sa['alerts'])), alerts_cleared=sorted(set(sa['alerts']) - set(sb['alerts'])))
