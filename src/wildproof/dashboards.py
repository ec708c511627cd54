"""Dashboards: Panel components (a read-only data store plus views) for stakeholders, served by `wildproof dashboards`.

`DashboardData` reads a store without changing it: DuckDB over the Delta tables, every value a bound parameter, and no
MLflow (model cards are read from the files the registry wrote). `DriftDashboard` and `ModelCardDashboard` are
`param.Parameterized` components: their selectors only take values the store offers, and their views are functions
of those values, so they render the same in JupyterLab (`DriftDashboard(data)`) and when served (`apps/*.py`).
The views read pre-aggregated facts (the `metrics` table, one row per window and metric), never the audit log
itself, except for one window of one feature when its distribution is asked for.

One action is offered, to a logged-in person only: `ModelCardDashboard` lets a user the login checked approve the version
shown in the approval roles their principal holds (validator: technical, business_owner: business, auditor: audit), through
`registry.approve` and its separation of duties. Stakeholders, and everyone when the dashboards are served without a login,
only read.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import param

from .audit import input_text, inputs_join
from .monitoring import JUDGED, chunked as _chunked, window_label as _label
from .spec import metric_label
from .settings import WildproofError, load_settings
from .store import Store, StoreError

BANDS = ('stable', 'watch', 'alert')


class DashboardError(WildproofError):
    "The dashboards cannot show what was asked: no store there, or a change was attempted."


def metrics_task(m: pd.DataFrame) -> str | None:
    "The task whose figures a frame of the metrics table holds (None when it holds none that tell): monitoring writes each task's own."
    if m is None or not len(m): return None
    have = set(zip(m.family, m.metric))
    if have & {('performance', 'mae'), ('estimated', 'mae'), ('performance', 'rmse'), ('estimated', 'rmse'), ('business', 'outcome_mean')}: return 'regression'
    if (have & {('performance', 'macro_f1'), ('estimated', 'macro_f1'), ('performance', 'macro_roc_auc'), ('estimated', 'macro_roc_auc')}
            or ((m.family == 'prediction_drift') & (m.subject == 'predicted_class')).any()): return 'multiclass'
    if have & {('performance', 'roc_auc'), ('estimated', 'roc_auc'), ('estimated', 'accuracy'), ('prediction_drift', 'positive_rate')}: return 'binary'
    return None


def prediction_subject(subject: str, task: str | None) -> str:
    "How a prediction-drift subject is shown: the score of a binary model, a regression's predicted value, a class's probability."
    if subject == 'score': return {'regression': '(predicted value)', 'multiclass': '(top probability)'}.get(task, '(score)')
    if subject == 'predicted_class': return '(predicted class)'
    return f'({subject.replace(":", " ")})'


def _detail(s) -> dict:
    try: return (json.loads(s) or {}) if isinstance(s, str) else {}
    except ValueError: return {}


def performance_table(m: pd.DataFrame, task: str, granularity: str, *, bands: float = 3.0) -> pd.DataFrame:
    """Per window, each judged metric of the task (regression: MAE, RMSE; multiclass: accuracy, macro F1; binary: ROC AUC, accuracy)
    realized on the outcomes known so far and estimated without them, with the estimate's band of `bands` sampling errors where
    monitoring gives one, and the label completeness."""
    rows = {}
    sel = m[m.family.isin(['performance', 'estimated']) & (m.subject.fillna('') == '')]
    for r in sel.itertuples():
        row = rows.setdefault(r.window_start, {'window': _label(r.window_start, granularity)})
        if r.metric == 'label_completeness': row['label completeness'] = r.value; continue
        if r.metric not in JUDGED[task]: continue
        name = metric_label(r.metric)
        if r.family == 'performance': row[f'{name} realized'] = r.value
        else:
            row[f'{name} estimated'] = r.value
            se = _detail(r.detail_json).get('sampling_error')
            if se is not None and r.value is not None and np.isfinite(se):
                row[f'{name} band'] = f'{r.value - bands * se:.4g} to {r.value + bands * se:.4g}'
        if r.status in ('alert', 'investigate'): row['flagged'] = ', '.join(filter(None, [row.get('flagged'), f'{r.family} {name}']))
    cols = ['window'] + [f'{metric_label(k)} {x}' for k in JUDGED[task] for x in ('realized', 'estimated', 'band')] + ['label completeness', 'flagged']
    t = pd.DataFrame(list(rows.values()))
    t = t.reindex(columns=[c for c in cols if c in t.columns])
    return t.map(lambda v: f'{v:.4g}' if isinstance(v, float) and np.isfinite(v) else v)


class DashboardData:
    "Read-only queries the dashboards need, over the store at `root` (default: `[store] root` of settings.ini)."
    def __init__(self, root=None, settings=None):
        self.settings = settings or load_settings()
        try: self.store = Store(root or self.settings.store.root, read_only=True)   # nothing created, migrated, locked or written
        except StoreError as e: raise DashboardError(str(e)) from None

    # --- monitoring
    def models(self) -> list[str]:
        m = self.store.sql('select distinct model from metrics order by 1')
        return m.model.tolist()

    def granularities(self, model: str) -> list[str]:
        g = self.store.sql('select distinct granularity from metrics where model = $m', dict(m=model)).granularity.tolist()
        chunks = sorted((x for x in g if _chunked(x)), key=lambda x: int(x.split()[0]) if x.split()[0].isdigit() else 0)
        return [x for x in ('month', 'week', 'day') if x in g] + chunks

    def task(self, model: str) -> str:
        "The model's task: from the figures monitoring wrote for it, else from its latest registered spec, else binary."
        m = self.store.sql("""select distinct family, metric, subject from metrics where model = $m and (family in ('performance', 'estimated')
                              or (family = 'business' and metric = 'outcome_mean') or (family = 'prediction_drift' and subject in ('score', 'predicted_class')))""",
                           dict(m=model))
        t = metrics_task(m)
        if t: return t
        try: s = self.store.sql('select task from specs where model = $m order by version desc limit 1', dict(m=model))
        except Exception: return 'binary'   # a store from before model specs
        return str(s.task.iloc[0]) if len(s) and s.task.iloc[0] else 'binary'

    def metrics(self, model: str, granularity: str, *, version: str | None = None, start=None, end=None) -> pd.DataFrame:
        "The metric series of `model`: one row per window and metric (pre-aggregated by monitoring)."
        m = self.store.sql('''select window_start, window_end, version, family, metric, subject, value, status, detail_json from metrics
                              where model = $m and granularity = $g and ($v is null or version = $v)
                                and ($s is null or window_start >= $s) and ($e is null or window_start <= $e)
                              order by window_start, family, metric, subject''',
                           dict(m=model, g=granularity, v=version, s=None if start is None else pd.Timestamp(start), e=None if end is None else pd.Timestamp(end)))
        m['window_start'] = pd.to_datetime(m.window_start, utc=True)
        m['window_end'] = pd.to_datetime(m.window_end, utc=True)
        return m

    def windows(self, model: str, granularity: str) -> list[str]:
        w = self.store.sql('select distinct window_start from metrics where model = $m and granularity = $g order by 1', dict(m=model, g=granularity))
        return [_label(t, granularity) for t in w.window_start]

    def versions(self, model: str) -> list[str]:
        return self.store.sql('select distinct version from metrics where model = $m order by 1', dict(m=model)).version.tolist()

    def alerts(self, model: str) -> pd.DataFrame:
        "Every alert of `model` in its latest state, with its history (who did what, when)."
        a = self.store.sql('select * from alerts where model = $m order by created_at', dict(m=model))
        if not len(a): return a
        last = a.groupby('alert_id').tail(1).set_index('alert_id')
        hist = a.groupby('alert_id').apply(lambda g: '; '.join(f'{s} by {x} {t:%Y-%m-%d %H:%M}' for s, x, t in zip(g.state, g.actor, pd.to_datetime(g.created_at))),
                                           include_groups=False)
        return last.assign(history=hist).reset_index().sort_values('window_start')

    def distribution(self, model: str, feature: str, start, end, *, version: str | None = None, bins: int = 10) -> pd.DataFrame | None:
        "Shares of `feature` in the reference of the window's version and in the window, on the reference's decile bins or categories."
        v = version or self.store.sql('''select version, count(*) as n from predictions where model = $m and route = 'champion'
                                        and event_time >= $s and event_time < $e group by 1 order by n desc limit 1''',
                                     dict(m=model, s=pd.Timestamp(start), e=pd.Timestamp(end)))
        if not isinstance(v, str):
            if not len(v): return None
            v = str(v.version.iloc[0])
        f = self.store.root / 'monitoring' / model / f'v{v}' / 'reference.parquet'
        if not f.is_file(): return None
        ref = pd.read_parquet(f)
        if feature not in ref.columns: return None
        where = "p.model = $m and p.route <> 'shadow' and p.event_time >= $s and p.event_time < $e"
        args = dict(m=model, s=pd.Timestamp(start), e=pd.Timestamp(end))
        con = self.store.connect(['predictions'])
        try:
            if feature in ('score', 'predicted_class'):   # the prediction itself: a regression's value, a binary score, the class answered
                cur = con.execute(f"select {'p.score' if feature == 'score' else 'p.decision'} as x from predictions p where {where}", args).df().x
            else: cur = con.execute(f'select {input_text(feature)} as x from predictions p {inputs_join(self.store, con, [feature], where=where, params=args)} where {where}',
                                    args).df().x
        finally: con.close()
        r = ref[feature]
        if pd.api.types.is_numeric_dtype(r):
            cur = pd.to_numeric(cur, errors='coerce')
            edges = np.unique(np.nanquantile(r.dropna(), np.linspace(0, 1, bins + 1)[1:-1]))
            names = [f'< {edges[0]:.4g}'] + [f'{a:.4g} to {b:.4g}' for a, b in zip(edges[:-1], edges[1:])] + [f'>= {edges[-1]:.4g}']
            count = lambda s: np.bincount(np.searchsorted(edges, s.dropna().to_numpy(float), side='right'), minlength=len(names))
            rc, cc = count(r), count(cur)
        else:
            r, cur = r.dropna().astype(str), cur.dropna().astype(str)
            names = sorted(set(r) | set(cur))
            rc, cc = r.value_counts().reindex(names, fill_value=0).to_numpy(), cur.value_counts().reindex(names, fill_value=0).to_numpy()
        return pd.DataFrame(dict(bin=names, reference=rc / max(rc.sum(), 1), current=cc / max(cc.sum(), 1)))

    # --- reports
    def reports(self, *, kind: str | None = None, model: str | None = None) -> pd.DataFrame:
        return self.store.sql('''select run_id, kind, model, version, name, status, path, summary_json, created_at from reports
                              where status = 'ok' and ($k is null or kind = $k) and ($m is null or model = $m) order by created_at''',
                           dict(k=kind, m=model)) if (self.store.root / 'tables' / 'reports' / '_delta_log').is_dir() else pd.DataFrame(
            columns=['run_id', 'kind', 'model', 'version', 'name', 'status', 'path', 'summary_json', 'created_at'])

    @staticmethod
    def report_url(kind: str, path: str) -> str:
        "The URL under which the dashboards serve a report's HTML: the index keeps `path` relative to the reports root, served at /reports."
        return f'reports/{Path(path).as_posix()}/{kind}.html'

    # --- inventory and cards
    def inventory(self) -> pd.DataFrame:
        "Every model version the store knows: current aliases (stages), risk tier, owner, gate, approvals, production periods."
        s = self.store
        models = s.sql('select model, arg_max(owner, created_at) as owner, arg_max(risk_tier, created_at) as risk_tier, '
                       'arg_max(intended_use, created_at) as intended_use from models group by 1')
        vers = s.sql("select distinct model, version from (select model, version from verdicts union all select model, version from aliases "
                     "union all select model, version from approvals) where version is not null")
        if not len(vers): return pd.DataFrame(columns=['model', 'version', 'stage', 'risk_tier', 'owner', 'gate', 'approvals', 'production'])
        cur = s.sql('select model, alias, arg_max(version, created_at) as version from aliases group by 1, 2')
        gate = s.sql("select model, version, arg_max(passed, created_at) as passed from verdicts where kind = 'gate' group by 1, 2")
        ap = s.sql('select model, version, string_agg(approver || \' (\' || role || \')\', \', \' order by created_at) as approvals from approvals group by 1, 2')
        prod = s.sql("select model, version, action, created_at from aliases where alias = 'production' order by created_at")
        rows = []
        for r in vers.sort_values(['model', 'version'], key=lambda c: c.map(lambda x: int(x) if str(x).isdigit() else 0) if c.name == 'version' else c).itertuples():
            info = models[models.model == r.model]
            g = gate[(gate.model == r.model) & (gate.version == r.version)]
            a = ap[(ap.model == r.model) & (ap.version == r.version)]
            p = prod[(prod.model == r.model) & (prod.version == r.version)]
            rows.append(dict(model=r.model, version=r.version,
                             stage=', '.join(cur[(cur.model == r.model) & (cur.version == r.version)].alias) or 'registered',
                             risk_tier=info.risk_tier.iloc[0] if len(info) else None, owner=info.owner.iloc[0] if len(info) else None,
                             gate=None if not len(g) else ('passed' if g.passed.iloc[0] else 'failed'),
                             approvals=a.approvals.iloc[0] if len(a) else '',
                             production='; '.join(f'{x.action} {pd.Timestamp(x.created_at):%Y-%m-%d %H:%M}' for x in p.itertuples())))
        return pd.DataFrame(rows)

    def approvals(self, model: str, version: str) -> pd.DataFrame:
        "The approvals on record for a model version, oldest first (every column the store keeps: approver, role, note, created_at, ...)."
        return self.store.sql('select * from approvals where model = $m and version = $v order by created_at', dict(m=model, v=str(version)))

    def card_html(self, model: str, version: str) -> str | None:
        f = self.store.root / 'cards' / model / f'v{version}' / 'card.html'
        if not f.is_file(): return None
        body = f.read_text(encoding='utf-8')
        return body.split('<body>', 1)[1].rsplit('</body>', 1)[0] if '<body>' in body else body


# ------------------------------------------------------------------------------------------------ views
def _table(df: pd.DataFrame, links: tuple = ()) -> str:
    "An HTML table of `df`, every cell escaped except the (href, text) pairs of the `links` columns."
    from html import escape
    head = ''.join(f'<th>{escape(str(c))}</th>' for c in df.columns)
    cell = lambda c, v: (f'<a href="{escape(v[0])}" target="_blank">{escape(v[1])}</a>' if v else '') if c in links else escape('' if v is None or (isinstance(v, float) and v != v) else str(v))
    body = ''.join('<tr>' + ''.join(f'<td>{cell(c, v)}</td>' for c, v in zip(df.columns, r)) + '</tr>' for r in df.itertuples(index=False))
    return f'<table class="wp-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _headline(summary: dict) -> str:
    "The few figures of a report summary worth a table cell."
    if summary.get('flagged'): return 'flagged: ' + ', '.join(summary['flagged'][:4])
    m = summary.get('metrics', {})
    keys = [k for k in ('roc_auc', 'pr_auc', 'brier', 'quarantine_share', 'rows_in', 'rows_quarantined', 'business.outcome_rate',
                        'performance.accuracy', 'estimated.accuracy',
                        'rmse', 'mae', 'r2', 'macro_roc_auc', 'log_loss', 'macro_f1',   # evaluations and cards of a regression or multiclass model
                        'performance.mae', 'estimated.mae', 'performance.rmse', 'estimated.rmse', 'business.outcome_mean',
                        'performance.macro_f1', 'estimated.macro_f1') if m.get(k) is not None and not (k == 'log_loss' and 'roc_auc' in m)]
    return '; '.join(f'{k} {m[k]:.3g}' for k in keys[:4])


def _fig(w=8, h=3):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(w, h))


def _png(fig):
    import matplotlib.pyplot as plt
    import panel as pn
    pane = pn.pane.Matplotlib(fig, tight=True, dpi=90, format='png', sizing_mode='stretch_width')
    plt.close(fig)
    return pane


def psi_heatmap(m: pd.DataFrame, granularity: str, watch: float, alert: float, task: str | None = None):
    "PSI per feature and prediction (rows: the score, a regression's value, a multiclass model's class and probabilities) and window (columns), coloured by band: stable, watch, alert."
    from matplotlib.colors import BoundaryNorm, ListedColormap
    d = m[(m.family == 'data_drift') & (m.metric == 'psi')]
    p = m[(m.family == 'prediction_drift') & (m.metric == 'psi')]
    p = p.assign(subject=[prediction_subject(x, task) for x in p.subject])
    d = pd.concat([d, p])
    if not len(d): return None
    t = d.pivot_table(index='subject', columns='window_start', values='value', aggfunc='first')
    fig, ax = _fig(max(6, 0.45 * t.shape[1] + 2), 0.32 * t.shape[0] + 1.4)
    cmap = ListedColormap(['#d1f0d9', '#ffe08a', '#f4a3a3'])
    im = ax.imshow(t.to_numpy(float), aspect='auto', cmap=cmap, norm=BoundaryNorm([0, watch, alert, 1e9], 3))
    ax.set_yticks(range(t.shape[0]), t.index); ax.set_xticks(range(t.shape[1]), [_label(c, granularity) for c in t.columns], rotation=60, fontsize=8)
    for (i, j), v in np.ndenumerate(t.to_numpy(float)):
        if np.isfinite(v): ax.text(j, i, f'{v:.2f}', ha='center', va='center', fontsize=6.5)
    cb = fig.colorbar(im, ax=ax, ticks=[watch / 2, (watch + alert) / 2, alert * 1.5], fraction=0.03)
    cb.ax.set_yticklabels([f'stable < {watch}', f'watch < {alert}', f'alert >= {alert}'], fontsize=7)
    ax.set_title('PSI per feature and window')
    return fig


class DriftDashboard(param.Parameterized):
    "The drift dashboard: model, version and window range; drift, service, business, performance and alerts of those windows."
    model = param.Selector(check_on_set=True, objects=[], doc='model')
    version = param.Selector(check_on_set=True, objects=['all'], default='all', doc='only windows answered mostly by this version')
    granularity = param.Selector(check_on_set=True, objects=['month'], default='month')
    start = param.Selector(check_on_set=True, objects=[], doc='first window')
    end = param.Selector(check_on_set=True, objects=[], doc='last window')
    feature = param.Selector(check_on_set=True, objects=[], doc='feature whose distribution is shown')
    window = param.Selector(check_on_set=True, objects=[], doc='window whose distribution is shown')

    def __init__(self, data: DashboardData | None = None, **params):
        self.data, self._last = data or DashboardData(), (None, None)   # _last: the last selection's metrics
        super().__init__(**params)
        models = self.data.models()
        self.param.model.objects = models
        if models and self.model not in models: self.model = models[0]
        self._choices()

    @param.depends('model', 'granularity', watch=True)
    def _choices(self):
        if self.model is None: return
        gs = self.data.granularities(self.model) or ['month']
        self.param.granularity.objects = gs
        if self.granularity not in gs: self.granularity = gs[0]; return
        wins = self.data.windows(self.model, self.granularity)
        self.param.version.objects = ['all'] + self.data.versions(self.model)
        for p in ('start', 'end', 'window'): self.param[p].objects = wins
        if wins:
            self.start, self.end = wins[0], wins[-1]
            m = self._metrics()
            psi = m[(m.family == 'data_drift') & (m.metric == 'psi')]
            feats = sorted(psi.subject.unique())
            self.param.feature.objects = feats
            worst = psi.sort_values('value').iloc[-1] if len(psi) else None
            self.feature = worst.subject if worst is not None else (feats[0] if feats else None)
            self.window = _label(worst.window_start, self.granularity) if worst is not None else wins[-1]

    def _ts(self, label):
        if _chunked(self.granularity): return pd.Timestamp(label, tz='UTC')
        return pd.Timestamp(label + ('-01' if self.granularity == 'month' else ''), tz='UTC')

    def _span(self, label) -> tuple[pd.Timestamp, pd.Timestamp]:
        "The window named `label`: a calendar window, or a chunk from its first event time to just after its last."
        from .monitoring import window_of
        if not _chunked(self.granularity): return window_of(self._ts(label), self.granularity)
        s = self._ts(label)
        w = self.data.store.sql('select max(window_end) as e from metrics where model = $m and granularity = $g and window_start = $s',
                                dict(m=self.model, g=self.granularity, s=s)).e.iloc[0]
        return s, pd.Timestamp(w).tz_convert('UTC') + pd.Timedelta(microseconds=1) if w is not None and pd.notna(w) else s

    def _task(self, m: pd.DataFrame | None = None) -> str:
        "The chosen model's task: from the figures of the selection, else from the store."
        t = metrics_task(self._metrics() if m is None else m)
        if t is None and self.model:
            if getattr(self, '_task_of', (None, None))[0] != self.model: self._task_of = (self.model, self.data.task(self.model))
            t = self._task_of[1]
        return t or 'binary'

    def _metrics(self) -> pd.DataFrame:
        "The metrics of the chosen model, version and windows: one query per selection, shared by the views it redraws (not modified by them)."
        if self.model is None or not self.start: return pd.DataFrame(columns=['window_start', 'version', 'family', 'metric', 'subject', 'value', 'status'])
        key = (self.model, self.granularity, self.version, self.start, self.end)
        if self._last[0] != key:
            self._last = (key, self.data.metrics(self.model, self.granularity, version=None if self.version == 'all' else self.version,
                                                 start=self._ts(self.start), end=self._ts(self.end)))
        return self._last[1]

    def _series(self, m, fam, metric, subject=None):
        x = m[(m.family == fam) & (m.metric == metric) & ((m.subject == subject) if subject else True)]
        return x.set_index('window_start').value

    @param.depends('model', 'version', 'granularity', 'start', 'end')
    def heatmap(self):
        import panel as pn
        mon = self.data.settings.monitoring
        m = self._metrics()
        fig = psi_heatmap(m, self.granularity, mon.psi_watch, mon.psi_alert, self._task(m))
        return _png(fig) if fig is not None else pn.pane.Markdown('No drift metrics in these windows.')

    @param.depends('model', 'feature', 'window', 'granularity')
    def distribution(self):
        import panel as pn
        if not (self.model and self.feature and self.window): return pn.pane.Markdown('Choose a feature and a window.')
        s, e = self._span(self.window)
        d = self.data.distribution(self.model, self.feature, s, e)
        if d is None: return pn.pane.Markdown(f'No reference or no data for {self.feature} in {self.window}.')
        fig, ax = _fig(8, 3)
        x = np.arange(len(d))
        ax.bar(x - 0.2, d.reference, 0.4, label='reference', color='#8c959f'); ax.bar(x + 0.2, d.current, 0.4, label=self.window, color='#0969da')
        ax.set_xticks(x, d.bin, rotation=30, ha='right', fontsize=7); ax.set_ylabel('share'); ax.legend()
        ax.set_title(f'{self.feature}: reference against {self.window}')
        return _png(fig)

    @param.depends('model', 'version', 'granularity', 'start', 'end')
    def service(self):
        import panel as pn
        m = self._metrics()
        if not len(m): return pn.pane.Markdown('No service metrics.')
        fig, a1 = _fig(8, 3)
        vol = self._series(m, 'service', 'volume')
        a1.bar([_label(t, self.granularity) for t in vol.index], vol.values, color='#d0d7de', label='volume')
        a1.set_ylabel('predictions'); a1.tick_params(axis='x', rotation=60, labelsize=7)
        a2 = a1.twinx()
        for k, c in (('error_rate', '#cf222e'), ('fallback_rate', '#bf8700'), ('invalid_rate', '#8250df')):
            s = self._series(m, 'service', k)
            if len(s): a2.plot([_label(t, self.granularity) for t in s.index], s.values, marker='o', ms=3, color=c, label=k.replace('_', ' '))
        a2.set_ylabel('share'); a2.legend(fontsize=7, loc='upper left')
        a1.set_title('volume, error, fallback and refused rates')
        out = [_png(fig)]
        lat = m[(m.family == 'service') & m.metric.str.startswith('latency')]
        if len(lat):
            sla = self.data.settings.sla.latency_p95_ms
            fig, ax = _fig(8, 2.6)
            for k, g in lat.groupby('metric'): ax.plot([_label(t, self.granularity) for t in g.window_start], g.value, marker='o', ms=3, label=k)
            ax.axhline(sla, color='#cf222e', ls='--', label=f'SLA p95 {sla:g} ms'); ax.set_ylabel('ms'); ax.legend(fontsize=7)
            ax.tick_params(axis='x', rotation=60, labelsize=7); ax.set_title('latency of one-record requests')
            out.append(_png(fig))
        else: out.append(pn.pane.Markdown('Latency: no one-record requests in these windows (batch scoring only).'))
        return pn.Column(*out, sizing_mode='stretch_width')

    @param.depends('model', 'version', 'granularity', 'start', 'end')
    def business(self):
        import panel as pn
        m = self._metrics()
        if not len(m): return pn.pane.Markdown('No business metrics.')
        task = self._task(m)
        if task != 'binary': return self._task_business(m, task)
        fig, ax = _fig(8, 2.6)
        labels = sorted(set(m[(m.family == 'business') & (m.metric == 'decision_rate')].subject))
        for k, subject in [('decision_rate', x) for x in labels] + [('outcome_rate', None)]:
            s = self._series(m, 'business', k, subject)
            if len(s): ax.plot([_label(t, self.granularity) for t in s.index], s.values, marker='o', ms=3, ls='--' if subject is None else '-',
                               label=f'decision {subject}' if subject else 'positive outcomes (known so far)')
        ax.set_ylabel('share'); ax.legend(fontsize=7); ax.tick_params(axis='x', rotation=60, labelsize=7)
        ax.set_title('share of each decision; share of positive outcomes among those known so far')
        return _png(fig)

    def _task_business(self, m: pd.DataFrame, task: str):
        import panel as pn
        lab = lambda s: [_label(t, self.granularity) for t in s.index]
        fig, ax = _fig(8, 2.6)
        if task == 'regression':
            s = self._series(m, 'business', 'outcome_mean')
            if not len(s): return pn.pane.Markdown('No outcomes known yet in these windows.')
            ax.plot(lab(s), s.values, marker='o', ms=3, color='#0969da', label='mean outcome (known so far)')
            ax.set_ylabel('mean outcome'); ax.set_title('mean outcome among those known so far')
        else:
            classes = list(dict.fromkeys(m[(m.family == 'business') & m.metric.isin(['decision_rate', 'outcome_rate'])].subject))
            if not classes: return pn.pane.Markdown('No business metrics.')
            for k, c in enumerate(classes):
                colour = f'C{k}'
                for metric, ls, what in (('decision_rate', '-', 'predicted'), ('outcome_rate', '--', 'actual, known so far')):
                    s = self._series(m, 'business', metric, c)
                    if len(s): ax.plot(lab(s), s.values, marker='o', ms=3, ls=ls, color=colour, label=f'{c}: {what}')
            ax.set_ylabel('share'); ax.set_title('class mix: share of each class predicted (solid) and actual among known outcomes (dashed)')
        ax.legend(fontsize=7); ax.tick_params(axis='x', rotation=60, labelsize=7)
        return _png(fig)

    @param.depends('model', 'version', 'granularity', 'start', 'end')
    def predictions(self):
        """The drift of what the model answers: a binary model's score and positive rate; a regression's predicted value (PSI, and its
        distribution in the chosen window against the reference); a multiclass model's class mix and each class's probability."""
        import panel as pn
        m = self._metrics()
        p = m[(m.family == 'prediction_drift') & (m.metric == 'psi')]
        if not len(p): return pn.pane.Markdown('No prediction drift metrics in these windows.')
        task, mon = self._task(m), self.data.settings.monitoring
        out = []
        fig, ax = _fig(8, 2.6)
        for subject, g in p.groupby('subject', sort=False):
            ax.plot([_label(t, self.granularity) for t in g.window_start], g.value, marker='o', ms=3, label=prediction_subject(subject, task))
        th = [(_detail(x).get('threshold')) for x in p.detail_json] if 'detail_json' in p else []
        if not any(t is not None for t in th):
            for t, c in ((mon.psi_watch, '#bf8700'), (mon.psi_alert, '#cf222e')): ax.axhline(t, color=c, ls='--', lw=1)
        ax.set_ylabel('PSI against the reference'); ax.legend(fontsize=7); ax.tick_params(axis='x', rotation=60, labelsize=7)
        what = dict(regression="the predicted value's drift", multiclass="drift of the class answered and of each class's probability").get(task, "the score's drift")
        ax.set_title(what); out.append(_png(fig))
        if task == 'multiclass':
            mix = m[(m.family == 'business') & (m.metric == 'decision_rate')].pivot_table(index='window_start', columns='subject', values='value', aggfunc='first')
            if len(mix):
                fig, ax = _fig(8, 2.6)
                bottom = np.zeros(len(mix))
                x = [_label(t, self.granularity) for t in mix.index]
                for c in mix.columns:
                    v = mix[c].fillna(0).to_numpy(float); ax.bar(x, v, bottom=bottom, label=c); bottom += v
                ax.set_ylabel('share of answers'); ax.set_ylim(0, 1); ax.legend(fontsize=7); ax.tick_params(axis='x', rotation=60, labelsize=7)
                ax.set_title('class mix: the share of each class predicted'); out.append(_png(fig))
        elif task == 'regression' and self.window:
            s, e = self._span(self.window)
            d = self.data.distribution(self.model, 'score', s, e)
            if d is not None:
                fig, ax = _fig(8, 2.6)
                x = np.arange(len(d))
                ax.bar(x - 0.2, d.reference, 0.4, label='reference', color='#8c959f'); ax.bar(x + 0.2, d.current, 0.4, label=self.window, color='#0969da')
                ax.set_xticks(x, d.bin, rotation=30, ha='right', fontsize=7); ax.set_ylabel('share'); ax.legend()
                ax.set_title(f'predicted value: reference against {self.window}'); out.append(_png(fig))
        return pn.Column(*out, sizing_mode='stretch_width')

    @param.depends('model', 'version', 'granularity', 'start', 'end')
    def performance(self):
        import panel as pn
        m = self._metrics()
        task = self._task(m)
        if task != 'binary': return self._task_performance(m, task)
        real, est, comp = self._series(m, 'performance', 'accuracy'), self._series(m, 'estimated', 'accuracy'), self._series(m, 'performance', 'label_completeness')
        if not len(est) and not len(real): return pn.pane.Markdown('No performance metrics.')
        fig, ax = _fig(8, 3)
        lab = lambda s: [_label(t, self.granularity) for t in s.index]
        ax.plot(lab(est), est.values, marker='o', ms=3, ls='--', color='#8250df', label='estimated (from the scores)')
        mature = real[comp.reindex(real.index).fillna(0) >= self.data.settings.monitoring.min_label_completeness]
        ax.plot(lab(real), real.values, color='#0969da', alpha=0.3)
        ax.plot(lab(mature), mature.values, marker='o', ms=4, color='#0969da', ls='', label='realized (matured cohorts)')
        ax.set_ylabel('accuracy'); ax.tick_params(axis='x', rotation=60, labelsize=7)
        a2 = ax.twinx(); a2.bar(lab(comp), comp.values, alpha=0.12, color='#6e7781'); a2.set_ylim(0, 1.05); a2.set_ylabel('label completeness')
        ax.legend(fontsize=7, loc='lower left'); ax.set_title('realized accuracy on matured cohorts beside the estimate')
        return _png(fig)

    BANDS = 3.0   # the estimate's band: this many sampling errors either side

    def _task_performance(self, m: pd.DataFrame, task: str):
        """A regression's MAE and RMSE, a multiclass model's accuracy and macro F1: realized on matured cohorts beside the estimate
        made without outcomes (with its band of sampling errors and its alert threshold, where monitoring gives them); a table below."""
        import panel as pn
        names = JUDGED[task]
        if not any(len(self._series(m, f, k)) for f in ('performance', 'estimated') for k in names): return pn.pane.Markdown('No performance metrics.')
        comp = self._series(m, 'performance', 'label_completeness')
        lab = lambda s: [_label(t, self.granularity) for t in s.index]
        out = []
        for k in names:
            name = metric_label(k)
            est = m[(m.family == 'estimated') & (m.metric == k) & (m.subject.fillna('') == '')].set_index('window_start')
            real = m[(m.family == 'performance') & (m.metric == k) & (m.subject.fillna('') == '')].set_index('window_start').value
            if not len(est) and not len(real): continue
            fig, ax = _fig(8, 2.8)
            if len(est):
                se = np.array([_detail(x).get('sampling_error', np.nan) for x in est.detail_json], float)
                v = est.value.to_numpy(float)
                ax.plot(lab(est), v, marker='o', ms=3, ls='--', color='#8250df', label='estimated (without outcomes)')
                if np.isfinite(se).any():
                    ax.fill_between(lab(est), v - self.BANDS * se, v + self.BANDS * se, color='#8250df', alpha=0.15, label=f'± {self.BANDS:g} sampling errors')
                th = [_detail(x).get('threshold') for x in est.detail_json]
                if any(t is not None for t in th):
                    ax.plot(lab(est), [np.nan if t is None else t for t in th], color='#cf222e', ls=':', lw=1, label='alert threshold')
            mature = real[comp.reindex(real.index).fillna(0) >= self.data.settings.monitoring.min_label_completeness]
            ax.plot(lab(real), real.values, color='#0969da', alpha=0.3)
            ax.plot(lab(mature), mature.values, marker='o', ms=4, color='#0969da', ls='', label='realized (matured cohorts)')
            ax.set_ylabel(name); ax.tick_params(axis='x', rotation=60, labelsize=7)
            a2 = ax.twinx(); a2.bar(lab(comp), comp.values, alpha=0.12, color='#6e7781'); a2.set_ylim(0, 1.05); a2.set_ylabel('label completeness')
            ax.legend(fontsize=7, loc='best'); ax.set_title(f'realized {name} on matured cohorts beside the estimate'
                                                           + (' (lower is better)' if k in ('mae', 'rmse', 'log_loss') else ''))
            out.append(_png(fig))
        t = performance_table(m, task, self.granularity, bands=self.BANDS)
        out.append(pn.pane.HTML(_table(t), sizing_mode='stretch_width', max_height=360, styles={'overflow-y': 'auto'}))
        return pn.Column(*out, sizing_mode='stretch_width')

    @param.depends('model', 'granularity')
    def alerts(self):
        import panel as pn
        a = self.data.alerts(self.model) if self.model else pd.DataFrame()
        if not len(a): return pn.pane.Markdown('No alerts.')
        reps = self.data.reports(kind='monitoring', model=self.model)
        link = {r.name: (self.data.report_url(r.kind, r.path), f'report {r.name}') for r in reps.itertuples()}   # the latest version of each window
        t = a.assign(window=[(_label(w, self.granularity) if pd.notna(w) else '') for w in a.window_start])
        t['report'] = [link.get(_label(w, self.granularity, path=True)) if pd.notna(w) else None for w in a.window_start]
        cols = ['window', 'rule', 'subject', 'severity', 'state', 'message', 'history', 'report']
        return pn.pane.HTML(_table(t[cols], links=('report',)), sizing_mode='stretch_width', max_height=420, styles={'overflow-y': 'auto'})

    def panel(self):
        "The whole dashboard as a Panel layout."
        import panel as pn
        controls = pn.Param(self.param, parameters=['model', 'version', 'granularity', 'start', 'end', 'feature', 'window'],
                            widgets={'start': pn.widgets.Select, 'end': pn.widgets.Select}, show_name=False, width=240)
        # the first render is the heatmap, from pre-aggregated metrics; the rest loads right after it (the distribution reads
        # one window of the audit log itself)
        later = lambda f: pn.panel(f, defer_load=True, sizing_mode='stretch_width')
        body = pn.Column('## Data and prediction drift', self.heatmap, '### Distribution', later(self.distribution),
                         '## Service', later(self.service), '## Business', later(self.business),
                         '## Predictions', later(self.predictions), '## Performance', later(self.performance), '## Alerts', later(self.alerts),
                         sizing_mode='stretch_width')
        return pn.Row(pn.Column('# wildproof: drift', controls), body, sizing_mode='stretch_width')

    def __panel__(self): return self.panel()


def _verbatim(text: str) -> str:
    "`text` for a Markdown pane (Panel's alerts) shown as it is: every character Markdown or HTML would read escaped."
    import re
    return re.sub(r'([\\`*_{}\[\]()<>#+!|~.&-])', r'\\\1', text)


def session_user() -> str | None:
    """The name the dashboards' login signed into this session's cookie (Panel's `pn.state.user`), or None: no session, no login
    (`auth = none`), or Panel's guest (a cookie any browser can set, so it never names a person)."""
    import panel as pn
    if pn.state.cookies.get('is_guest'): return None
    return pn.state.user or None


class ModelCardDashboard(param.Parameterized):
    """The model card and inventory dashboard: every model version, a version's card and its approvals, and the versioned reports.
    Read-only for everyone, except that a logged-in `user` holding an approving role (validator, business_owner, auditor) may
    approve the version shown (`approve`): the registry checks the roles and the separation of duties, and refuses with its reason."""
    model = param.Selector(check_on_set=True, objects=[])
    version = param.Selector(check_on_set=True, objects=[])
    kind = param.Selector(check_on_set=True, objects=['all', 'validation', 'evaluation', 'monitoring', 'model_card'], default='all')
    recorded = param.Integer(default=0, precedence=-1, doc='how many approvals this dashboard recorded: the views that show them re-read the store when it moves')

    def __init__(self, data: DashboardData | None = None, *, user: str | None = None, **params):
        self.data = data or DashboardData()
        self.user = user   # a name the server's login checked (`session_user()`); None: nobody may act
        super().__init__(**params)
        self._inv = self.data.inventory()
        models = sorted(self._inv.model.unique()) if len(self._inv) else []
        self.param.model.objects = models
        if models and self.model not in models: self.model = models[0]
        self._versions()
        self._widgets = None

    @param.depends('model', watch=True)
    def _versions(self):
        inv = self._inv
        vs = inv[inv.model == self.model].version.tolist() if len(inv) else []
        self.param.version.objects = vs
        prod = inv[(inv.model == self.model) & inv.stage.str.contains('production')] if len(inv) else inv
        if vs: self.version = prod.version.iloc[0] if len(prod) else vs[-1]

    @param.depends('recorded')
    def inventory(self):
        import panel as pn
        return pn.pane.HTML(_table(self._inv) if len(self._inv) else '<p>No model yet.</p>', sizing_mode='stretch_width')

    @param.depends('model', 'version')
    def card(self):
        import panel as pn
        if not (self.model and self.version): return pn.pane.Markdown('Choose a model version.')
        h = self.data.card_html(self.model, self.version)
        return pn.pane.HTML(h, sizing_mode='stretch_width') if h else pn.pane.Markdown(
            f'{self.model} v{self.version} has no card yet: a card is written when a version is promoted (`wildproof card`).')

    # --- approvals
    def signs(self) -> list[str]:
        "The approval roles (technical, business, audit) the logged-in user may sign by the roles the principals file gives them now."
        if not self.user: return []
        from wildproof import principals
        from wildproof.registry import APPROVERS   # an approval role: the principal's role it needs
        try: p = principals.logged_in(self.user, settings=self.data.settings)
        except WildproofError: return []   # not in the principals file (any more): they may read, not act
        return [a for a, r in APPROVERS.items() if r in p.roles]

    @param.depends('model', 'version', 'recorded')
    def approvals(self):
        """The approvals on record for the version shown, read from the store at each change: who, in which role, when, the note, and
        whether its signature verifies against the approver's SSH key in the principals file (as the model card checks it). The card
        on file shows the approvals of when it was written; these are the store's now."""
        import panel as pn
        if not (self.model and self.version): return pn.pane.Markdown('')
        a = self.data.approvals(self.model, self.version)
        if not len(a): return pn.pane.Markdown(f'No approval of {self.model} v{self.version} on record.')
        rows = a.to_dict('records')
        if any(r.get('signature') for r in rows):
            from wildproof.cards import _signatures   # ssh-keygen verify; only when a signature is there to check (cards loads scikit-learn)
            sigs = _signatures(rows, self.data.settings)
        else: sigs = ['unsigned'] * len(rows)
        t = pd.DataFrame(dict(approver=a.approver, role=a.role, when=[f'{pd.Timestamp(x):%Y-%m-%d %H:%M:%S} UTC' for x in a.created_at], note=a.note,
                              signature=sigs))
        return pn.pane.HTML(_table(t), sizing_mode='stretch_width')

    def approve(self, role: str, note: str = '') -> pd.DataFrame:
        """Record the logged-in user's approval of the version shown as `role` (`registry.approve`, which refuses the version's
        author, a role the user lacks or the tier does not list, and a second role for one person), then re-read the store.
        Returns the approvals now on record. Without a login: a `DashboardError`; a refusal: the registry's own error."""
        from wildproof import principals, registry
        if not self.user: raise DashboardError('approving needs a login: these dashboards are served without one ([dashboard] auth = none), so nobody may act from them')
        if not (self.model and self.version): raise DashboardError('no model version is shown: choose one to approve')
        model, version = self.model, self.version
        try: store = Store(self.data.store.root)   # the dashboards read through a read-only store; an approval writes through its own
        except StoreError as e: raise DashboardError(str(e)) from None
        out = registry.approve(store, model, version, principal=principals.logged_in(self.user, settings=self.data.settings),
                               role=role, note=note or '', settings=self.data.settings)
        self._inv = self.data.inventory()
        self.recorded += 1
        return out

    def _approve_controls(self):
        "The approve buttons (one per approval role the user may sign), the note and the answer; None when the user may sign none."
        import panel as pn
        if self._widgets is not None: return self._widgets
        roles = self.signs()
        if not roles:
            self._widgets = None
            return None
        note = pn.widgets.TextInput(label='Note (optional)', placeholder='why, on what evidence', width=360)
        answer = pn.pane.Alert('', alert_type='light', visible=False, sizing_mode='stretch_width')
        buttons = {r: pn.widgets.Button(label=f'Approve v{self.version} as {r}', color='primary', disabled=not self.version) for r in roles}

        def click(role):
            def go(_):
                try:
                    got = self.approve(role, note.value)
                    mine = got[(got.approver == self.user) & (got.role == role)]
                    answer.object = _verbatim(f'{self.user} approved {self.model} v{self.version} as {role}'
                                              f'{f" at {pd.Timestamp(mine.created_at.iloc[-1]):%Y-%m-%d %H:%M:%S} UTC" if len(mine) else ""}. '
                                              'On record: ' + ', '.join(f'{x.approver} ({x.role})' for x in got.itertuples()))
                    answer.alert_type = 'success'
                    note.value = ''
                except WildproofError as e:
                    answer.object, answer.alert_type = 'Refused: ' + _verbatim(str(e)), 'danger'
                answer.visible = True
            return go
        for r, b in buttons.items(): b.on_click(click(r))

        def relabel(*_):
            for r, b in buttons.items(): b.label, b.disabled = f'Approve v{self.version} as {r}', not self.version
            answer.visible = False
        self.param.watch(relabel, ['model', 'version'])
        self._widgets = pn.Column(f'Logged in as **{self.user}**: you may approve the version shown as {", ".join(roles)}.',
                                  note, pn.Row(*buttons.values()), answer, sizing_mode='stretch_width')
        return self._widgets

    @param.depends('kind')
    def reports(self):
        import panel as pn
        r = self.data.reports(kind=None if self.kind == 'all' else self.kind)   # every model's (validation reports belong to a contract)
        if not len(r): return pn.pane.Markdown('No reports yet (`wildproof report`, `wildproof schedule run`).')
        rows = []
        for x in r.itertuples():
            s = json.loads(x.summary_json)
            rows.append(dict(kind=x.kind, model=x.model, version=x.version, name=x.name, verdict=s['verdict'], alerts=len(s['alerts']),
                             made=f'{pd.Timestamp(x.created_at):%Y-%m-%d %H:%M}',
                             summary=_headline(s),
                             report=(self.data.report_url(x.kind, x.path), 'open')))
        return pn.pane.HTML(_table(pd.DataFrame(rows), links=('report',)), sizing_mode='stretch_width', max_height=500, styles={'overflow-y': 'auto'})

    def panel(self):
        import panel as pn
        controls = pn.Param(self.param, parameters=['model', 'version', 'kind'], show_name=False, width=240)
        act = self._approve_controls()
        body = pn.Column('## Inventory', self.inventory, '## Model card', self.card, '## Approvals', self.approvals, *([act] if act else []),
                         '## Reports', self.reports, sizing_mode='stretch_width')
        return pn.Row(pn.Column('# wildproof: models', controls), body, sizing_mode='stretch_width')

    def __panel__(self): return self.panel()


# ------------------------------------------------------------------------------------------------ the notebook workbench
def what_if(m: pd.DataFrame, watch: float, alert: float, *, noise: bool = True) -> pd.DataFrame:
    """Which features would be on watch or alert, per window, with PSI bands `watch` and `alert` (and, with `noise`, only
    above each window's noise band, as monitoring judges). `m` is `DashboardData.metrics` output."""
    if not 0 <= watch <= alert: raise DashboardError(f'the bands must satisfy 0 <= watch <= alert, not watch {watch}, alert {alert}')
    d = m[(m.family.isin(['data_drift', 'prediction_drift'])) & (m.metric == 'psi')].copy()
    band = d.detail_json.map(lambda s: (json.loads(s) or {}).get('noise_band', 0.0) if isinstance(s, str) else 0.0)
    d['would_be'] = np.where(d.value < watch, 'stable', np.where((d.value >= alert) & ((not noise) | (d.value > band)), 'alert', 'watch'))
    t = d.pivot_table(index='window_start', columns='would_be', values='subject', aggfunc=lambda s: ', '.join(sorted(s)))
    for b in BANDS:
        if b not in t.columns: t[b] = ''
    out = t[['alert', 'watch']].fillna('').reset_index()
    out['alerts'] = [len([x for x in a.split(', ') if x]) for a in out.alert]
    return out


class DriftWhatIf:
    "ipywidgets for JupyterLab: move the PSI bands and see which features would alert in each window (nothing is changed)."
    def __init__(self, data: DashboardData | None = None, model: str | None = None, granularity: str = 'month'):
        import ipywidgets as w
        self.data = data or DashboardData()
        self.model = model or (self.data.models() or [None])[0]
        if self.model is None: raise DashboardError('no model has monitoring metrics yet: run `wildproof monitor`')
        self.granularity = granularity
        self.metrics = self.data.metrics(self.model, granularity)
        mon = self.data.settings.monitoring
        self.watch = w.FloatSlider(value=mon.psi_watch, min=0, max=0.5, step=0.01, description='watch from')
        self.alert = w.FloatSlider(value=mon.psi_alert, min=0, max=1, step=0.01, description='alert from')
        self.noise = w.Checkbox(value=True, description='and above the noise band')
        self.out = w.HTML()
        for x in (self.watch, self.alert, self.noise): x.observe(lambda _: self.update(), names='value')
        self.widget = w.VBox([w.HTML(f'<b>{self.model}</b>: PSI bands what-if (settings: watch {mon.psi_watch}, alert {mon.psi_alert})'),
                              w.HBox([self.watch, self.alert, self.noise]), self.out])
        self.update()

    def update(self):
        try:
            t = what_if(self.metrics, self.watch.value, self.alert.value, noise=self.noise.value)
            t['window_start'] = [_label(x, self.granularity) for x in t.window_start]
            self.out.value = f'{int(t.alerts.sum())} alerts over {len(t)} windows' + _table(t)
        except DashboardError as e: self.out.value = f'<span style="color:#cf222e">{e}</span>'

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
