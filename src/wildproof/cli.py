"""The `wildproof` command line.

A plain module (not exported from a notebook): it only parses arguments and calls the package. Errors a
user can make (`WildproofError`) print one line on stderr and exit 1; argument mistakes exit 2 with usage.
"""
from __future__ import annotations
import argparse, json, os, sys
from pathlib import Path

import pandas as pd

from wildproof import __version__
from wildproof.settings import WildproofError, load_settings


def _store(args):
    from wildproof.store import Store
    return Store(args.store) if args.store else Store.from_settings(args.settings)


def _when(text: str) -> str:
    "A date or time argument, checked as it is parsed: a typo is a usage error, not a traceback from deep inside."
    try: ok = pd.Timestamp(text) is not pd.NaT
    except (ValueError, TypeError, OverflowError): ok = False
    if not ok: raise argparse.ArgumentTypeError(f'{text!r} is not a date or time (for example 2025-04-09 or 2025-04-09T12:00)')
    return text


def _model(args) -> str:
    "The model a command is about: --model, else [serving] model."
    m = getattr(args, 'model', None) or args.settings.serving.model
    if not m: raise WildproofError('which model? name it with --model NAME (or set [serving] model in settings.ini)')
    return m


def _principal(args, *roles):
    """The principal acting: the person `--as NAME`, authenticated by their password (asked, or the first line of standard input
    with --password-stdin), holding one of `roles`. A role may be named by its action in [access] ('promote' stands for
    [access] promote_roles, and a refusal names that rule). Asked once per command."""
    from wildproof import principals
    name = getattr(args, 'as_name', None)
    if not name:
        raise WildproofError(f'`wildproof {args.command}` records who acts: name yourself with --as NAME (your password is asked, '
                             f'or read from the first line of standard input with --password-stdin)')
    if getattr(args, '_principal', None) is None:
        password = sys.stdin.readline().rstrip('\n') if getattr(args, 'password_stdin', False) else None
        args._principal = principals.login(name, password, settings=args.settings)
    return principals.require(args._principal, *roles, settings=args.settings)


def _as_args(s, what: str):
    "The --as and --password-stdin arguments of a command that records who acts."
    s.add_argument('--as', dest='as_name', metavar='NAME', help=f'who {what}: a person in [access] principals_file (their password is asked)')
    s.add_argument('--password-stdin', action='store_true', help='read the password of --as from the first line of standard input (for scripts)')


def _table(df: pd.DataFrame) -> str:
    if not len(df): return '(none)'
    with pd.option_context('display.max_rows', 200, 'display.max_columns', 30, 'display.width', 200, 'display.max_colwidth', 60):
        return df.to_string(index=False)


def cmd_settings(args):
    print(args.settings)


def cmd_status(args):
    from wildproof.store import TABLES
    store = _store(args)
    meta = json.loads((store.root / 'store.json').read_text())
    print(f'store {store.root} (schema version {meta["schema_version"]})')
    counts = store.sql(' union all '.join(f"select '{t}' as table_name, count(*) as rows from {t}" for t in TABLES))
    print(_table(counts))


def cmd_ingest(args):
    from wildproof.datasets import ingest
    snap = ingest(_store(args), args.dataset, args.source, encoding=args.encoding)
    print(f'{"already stored as" if snap.existed else "ingested as"} {snap.snapshot_id}: {snap.rows:,} rows, {len(snap.columns)} columns')


def cmd_snapshots(args):
    from wildproof.datasets import list_snapshots
    print(_table(list_snapshots(_store(args), args.dataset)))


def cmd_contract_infer(args):
    from wildproof.contracts import infer_contract
    store = _store(args)
    c = infer_contract(store, args.snapshot, name=args.name, key=args.key, time_column=args.time_column,
                       exclude=args.exclude or (), settings=args.settings).register(store)
    out = Path(args.output or f'{c.name}.contract.yaml')
    c.save(out)
    print(f'contract {c.name} v{c.version}: {len(c.columns)} columns; written to {out} (edit it, then `wildproof contract register {out}`)')


def cmd_contract_register(args):
    from wildproof.contracts import load
    c = load(args.file).register(_store(args))
    print(f'contract {c.name} is at version {c.version}')


def cmd_contract_show(args):
    from wildproof.contracts import get_contract
    c = get_contract(_store(args), args.name, args.version)
    print(f'# version {c.version}')
    print(c.to_yaml())


def cmd_contract_list(args):
    store = _store(args)
    print(_table(store.sql('select contract, version, dataset, reference_snapshot, created_at from contracts order by contract, version',
                           tables=['contracts'])))


def cmd_validate(args):
    from wildproof.contracts import get_contract, load, validate
    from wildproof.datasets import get_snapshot, ingest
    store = _store(args)
    contract = load(args.contract) if Path(args.contract).suffix in ('.yaml', '.yml') else get_contract(store, args.contract)
    if Path(args.batch).exists():
        snap = ingest(store, args.dataset or contract.dataset or contract.name, args.batch, encoding=args.encoding)
    else: snap = get_snapshot(store, args.batch)
    v = validate(store, snap, contract, settings=args.settings, engine=args.engine)
    print(f'{v.status}: {v.snapshot_id} against {v.contract} v{v.contract_version}: {v.rows_in:,} rows in, {v.rows_accepted:,} accepted, '
          f'{v.rows_quarantined:,} quarantined, {v.rows_rejected:,} rejected with the batch  (validation {v.validation_id})')
    for p in v.problems: print(f'  - {p}')
    for r in v.rules:
        if r['failed']: print(f'  {r["rule"]:>10} {r["column"]}: {r["failed"]:,} rows (expected {r["detail"]}); e.g. {", ".join(map(str, r["examples"]))[:80]}')
    if not v.ok:
        print(f'wildproof: error: batch {v.snapshot_id} rejected', file=sys.stderr)
        return 1


def cmd_quarantine(args):
    store = _store(args)
    where, params = [], {}
    for k, col in (('validation', 'validation_id'), ('dataset', 'dataset'), ('rule', 'rule'), ('snapshot', 'snapshot_id')):
        if getattr(args, k): where.append(f'{col} = ${k}'); params[k] = getattr(args, k)
    q = ('select snapshot_id, "row", row_key, rule, "column", value, reason from quarantine' + (' where ' + ' and '.join(where) if where else '')
         + ' order by created_at, "row" limit $limit')
    print(_table(store.sql(q, {**params, 'limit': args.limit}, tables=['quarantine'])))


def cmd_train(args):
    from wildproof.registry import mark_candidate
    from wildproof.training import train
    who = _principal(args) if args.as_name else None   # the version's author (default: the operating-system user)
    store = _store(args)
    r = train(store, args.snapshot, args.model, seed=args.seed, settings=args.settings, author=who)
    mark_candidate(store, r.name, r.version, actor=who.name if who else None)
    m = ', '.join(f'{k.removeprefix("train_").replace("_", " ")} {v:.4g}' for k, v in r.metrics.items() if k != 'train_rows')
    print(f'{r.name} version {r.version} trained on {r.snapshot_id} under {r.contract} and spec v{r.spec.version} ({r.spec.task}; training {m}); '
          f'run {r.run_id}; alias candidate -> v{r.version}')


def _spec_kw(args) -> dict:
    kw = dict(positive=args.positive, threshold=args.threshold, decisions=args.decisions, sensitive=args.sensitive, slices=args.slices,
              inputs=args.inputs, features=args.features, outcome_time=args.outcome_time, key=args.key, time_column=args.time_column,
              primary_metric=args.primary_metric, prediction=args.prediction, score=args.score, external=args.external or None,
              classes=args.classes, scores=None)
    if args.scores:
        bad = [x for x in args.scores if '=' not in x or not x.partition('=')[0] or not x.partition('=')[2]]
        if bad: raise WildproofError(f'--scores takes CLASS=COLUMN pairs, not {bad[0]!r}')
        kw['scores'] = dict(x.split('=', 1) for x in args.scores)
        kw['classes'] = kw['classes'] or list(kw['scores'])
    if kw['positive'] is not None:
        try: kw['positive'] = int(kw['positive'])
        except ValueError: pass
    return kw


def cmd_model_init(args):
    from wildproof.spec import init_spec
    store = _store(args)
    s = init_spec(store, args.model, contract=args.contract, target=args.target, task=args.task, **_spec_kw(args)).register(store)
    out = Path(args.output or f'{s.model}.spec.yaml')
    s.save(out)
    print(f'model spec {s.model} v{s.version} ({s.task}, target {s.target}, {len(s.inputs)} inputs'
          + (', external' if s.external else '') + f'); written to {out} (edit it, then `wildproof model register {out}`)')


def cmd_model_register(args):
    from wildproof.spec import load
    s = load(args.file).register(_store(args))
    print(f'model spec {s.model} is at version {s.version}')


def cmd_model_show(args):
    from wildproof.spec import get_spec
    s = get_spec(_store(args), args.model, args.version)
    print(f'# version {s.version}')
    print(s.to_yaml())


def cmd_model_list(args):
    from wildproof.spec import list_specs
    print(_table(list_specs(_store(args))))


def _metrics_text(o: dict, task: str) -> str:
    "The task's headline metrics of an evaluation, each with its interval where it has one."
    from wildproof.spec import metric_label
    from wildproof.spec import TASK_METRICS
    out = []
    for m in TASK_METRICS[task]:
        v = o.get(m)
        if not isinstance(v, (int, float)) or v != v: continue
        ci = o.get(f'{m}_ci')
        d = 4 if m == 'brier' else 3 if abs(v) < 100 else 1
        out.append(f'{metric_label(m)} {v:.{d}f}' + (f' [{ci[0]:.{d}f}, {ci[1]:.{d}f}]' if ci else ''))
    return ', '.join(out)


def cmd_evaluate(args):
    from wildproof.registry import evaluate_version
    ev = evaluate_version(_store(args), args.model, args.version, args.snapshot, settings=args.settings, measure_cost=not args.no_cost,
                          engine=args.engine)
    out = Path(args.output or f'{args.model}-v{args.version}.evaluation.json')
    ev.save(out)
    print(f'{args.model} v{args.version} on {args.snapshot}: {_metrics_text(ev.overall, ev.info.get("task", "binary"))}; '
          f'fairness {"by " + ", ".join(ev.info["sensitive"]) if ev.info["sensitive"] else "not applicable"}; {len(ev.flags)} flags; written to {out}')
    for f in ev.flags: print(f'  - {f["section"]}: {f["subject"]}: {f["reason"]}')


def cmd_describe(args):
    from wildproof.registry import describe_model
    who = _principal(args, 'describe')
    describe_model(_store(args), args.model, owner=args.owner, intended_use=args.use, risk_tier=args.tier, limitations=args.limitations or '',
                   principal=who, settings=args.settings)
    print(f'{args.model}: owner {args.owner}, {args.tier} risk (described by {who.name})')


def cmd_gate(args):
    from wildproof.evaluation import Evaluation
    from wildproof.registry import gate
    v = gate(_store(args), args.model, args.version, Evaluation.load(args.evaluation), settings=args.settings)
    print(f'gate {"PASSED" if v.passed else "FAILED"} for {v.model} v{v.version} ({v.risk_tier} risk):')
    for r in v.reasons: print(f'  {r}')
    return 0 if v.passed else 1


def cmd_approve(args):
    from wildproof.registry import approve
    if args.approver: raise WildproofError('--approver is retired: an approval records an authenticated person; name yourself with --as NAME')
    who = _principal(args)   # the role an approval needs is checked by approve, which names the rule
    a = approve(_store(args), args.model, args.version, principal=who, role=args.role, note=args.note or '', sign_with=args.sign_with,
                settings=args.settings)
    print(f'{args.model} v{args.version} approvals: ' + ', '.join(f'{r.approver} ({r.role}{", signed" if r.signature else ""})' for r in a.itertuples()))


def _cards_line(cards: dict) -> str:
    return '; '.join(f'card v{v}: {p["markdown"] if isinstance(p, dict) else p}' for v, p in cards.items())


def cmd_promote(args):
    from wildproof.registry import promote
    from wildproof.cards import write_cards
    store = _store(args)
    r = promote(store, args.model, args.version, to=args.to, principal=_principal(args, 'promote'), reason=args.reason or '', settings=args.settings)
    print(f'{r["model"]} v{r["version"]} is now {r["stage"]}' + (f' (was v{r["previous"]})' if r['previous'] else '')
          + f'; {_cards_line(write_cards(store, r["model"], r["moved"], args.settings))}')


def cmd_rollback(args):
    from wildproof.registry import rollback
    from wildproof.cards import write_cards
    store = _store(args)
    r = rollback(store, args.model, principal=_principal(args, 'rollback'), reason=args.reason or '', settings=args.settings)
    print(f'{r["model"]} rolled back: v{r["version"]} is production again (v{r["previous"]} archived); {_cards_line(write_cards(store, r["model"], r["moved"], args.settings))}')


def cmd_card(args):
    from wildproof.cards import write_card
    paths = write_card(_store(args), args.model, args.version)
    print('\n'.join(f'{k:>8}  {v}' for k, v in paths.items()))


def cmd_models(args):
    from wildproof.registry import inventory, production_history
    store = _store(args)
    print(_table(inventory(store)))
    if args.history: print(f'\nproduction history of {args.history}:\n' + _table(production_history(store, args.history)))


def cmd_serve(args):
    from wildproof.service import serve
    serve(args.host, args.port, model=args.model, settings=args.settings, store=_store(args), workers=args.workers, auth='none' if args.no_auth else None)


def cmd_score(args):
    from wildproof.scoring import score_snapshot
    print(score_snapshot(_store(args), args.snapshot, model=args.model, settings=args.settings))


def cmd_audit_verify(args):
    from wildproof.audit import verify
    from wildproof import governance
    store = _store(args)
    v = verify(store)
    print(v)
    g = governance.verify(store, settings=args.settings, history=False)   # the decisions' record too: printed when broken (`wildproof governance verify` reports it in full)
    if not g.ok: print(g)
    return 0 if v.ok and g.ok else 1


def cmd_governance_verify(args):
    from wildproof import governance
    r = governance.verify(_store(args), principals=args.principals, settings=args.settings)
    print(r)
    return 0 if r.ok else 1


def cmd_governance_log(args):
    from wildproof import governance
    df = governance.log(_store(args), model=args.model, limit=args.n)
    print(_table(df) if len(df) else 'the governance record is empty' + (f' for model {args.model}' if args.model else ''))


def cmd_audit_retention(args):
    from wildproof.audit import apply_retention
    r = apply_retention(_store(args), days=args.days, settings=args.settings)
    print(f'removed {r["removed"]:,} prediction records older than {r["days"]} days (before {r["cutoff"]:%Y-%m-%d %H:%M} UTC)'
          + (f', through record {r["through_seq"]}; the removal is recorded as an audit_retention event' if r['removed'] else ''))


def cmd_audit_tail(args):
    store = _store(args)
    q = ('select seq, created_at, source, model, version, route, entity_key, score, decision, review, reasons, latency_ms from predictions'
         + (' where route = $route' if args.route else '') + ' order by seq desc limit $n')
    print(_table(store.sql(q, {'n': args.n, **({'route': args.route} if args.route else {})}).iloc[::-1]))


def cmd_audit_show(args):
    from wildproof.audit import record
    for x in record(_store(args), args.request_id, settings=args.settings):
        head = {k: x[k] for k in ('seq', 'request_id', 'created_at', 'source', 'model', 'version', 'route', 'entity_key', 'event_time',
                                  'score', 'decision', 'review', 'reasons', 'latency_ms', 'input_snapshot', 'input_row')}
        if x.get('probabilities') is not None: head['probabilities'] = x['probabilities']   # a multiclass answer's every class
        print(json.dumps({**head, 'inputs': x['inputs'], 'features': x['features']}, indent=1, default=str))


def cmd_outcomes(args):
    from wildproof.audit import record_outcomes
    from wildproof.datasets import read_csv
    src = Path(args.file)
    if not src.is_file(): raise WildproofError(f'{src} is not a file')
    from wildproof.external import outcome_records
    store = _store(args)
    df = pd.read_parquet(src) if src.suffix == '.parquet' else read_csv(src).to_pandas()
    df, skipped = outcome_records(store, df, model=args.model)   # a model's own key and target columns are read through its spec
    print(f'recorded {record_outcomes(store, df, source=str(src)):,} outcomes from {src}' + (f' ({skipped:,} rows without an outcome left out)' if skipped else ''))


def cmd_predictions_import(args):
    from wildproof.external import import_predictions
    src = Path(args.file)
    if not src.is_file(): raise WildproofError(f'{src} is not a file')
    print(import_predictions(_store(args), args.model, src, dataset=args.dataset, settings=args.settings))


def cmd_replay(args):
    from wildproof.scoring import replay
    r = replay(_store(args), args.version, model=_model(args), start=args.start, end=args.end, settings=args.settings)
    print(f'replayed {r["requests"]:,} served requests of {r["model"]} (answered by v{", v".join(r["champions"])}) through v{r["challenger"]}: '
          f'decisions disagree on {r["disagreement"]:.2%}, mean score difference {r["mean_score_difference"]:+.4f}')
    if 'difference' in r:
        print(f'  with outcomes ({r["with_outcomes"]:,}): ROC AUC champion {r["champion_roc_auc"]:.4f}, challenger {r["challenger_roc_auc"]:.4f}, '
              f'difference {r["difference"]:+.4f} [{r["difference_ci"][0]:+.4f}, {r["difference_ci"][1]:+.4f}]')
    else: print(f'  {r["with_outcomes"]:,} of them have outcomes so far: too few to compare ROC AUC')


PERFORMANCE_COLUMNS = ['estimated_roc_auc', 'roc_auc', 'estimated_accuracy', 'accuracy', 'estimated_macro_f1', 'macro_f1',
                       'estimated_macro_roc_auc', 'macro_roc_auc', 'estimated_mae', 'mae', 'estimated_rmse', 'rmse']

def cmd_monitor(args):
    from wildproof.monitoring import monitor
    if args.chunk_rows is not None and (args.every or args.window): raise WildproofError('--chunk-rows excludes --every and --window: give one of them')
    s = monitor(_store(args), args.model, window=args.window, as_of=args.as_of, granularity=args.every, chunk_rows=args.chunk_rows, settings=args.settings,
                engine=args.engine)
    if not len(s): print('nothing due: every window up to now is computed and its outcomes are complete'
                         + (f' (only full chunks of {args.chunk_rows:,} rows are computed)' if args.chunk_rows else '')); return
    # the performance columns of the model's task: those the summary has values in (a regression has no accuracy, a binary model no MAE)
    perf = [c for c in PERFORMANCE_COLUMNS if c in s.columns and s[c].notna().any()]
    if args.chunk_rows:
        cols = ['model', 'version', 'chunk', 'window_start', 'window_end', 'volume', 'drifting', 'score_psi', *perf, 'completeness', 'opened']
        s = s.assign(window_start=s.window_start.dt.strftime('%Y-%m-%d %H:%M'), window_end=s.window_end.dt.strftime('%Y-%m-%d %H:%M'))
        print(_table(s[cols].round(4)))
        return
    cols = ['model', 'version', 'window_start', 'volume', 'quarantine_share', 'drifting', 'score_psi', 'completeness', *perf, 'opened']
    s = s.assign(window_start=s.window_start.dt.strftime('%Y-%m-%d'))
    print(_table(s[cols].round(4)))


def cmd_alerts(args):
    from wildproof.monitoring import acknowledge, alert_history, alerts, resolve
    store = _store(args)
    if args.action in ('ack', 'resolve'):
        if args.by: raise WildproofError(f'alerts {args.action} records the person authenticated by --as NAME (and their password), not a typed --by name')
        if not args.id: raise WildproofError(f'alerts {args.action} needs an alert id')
        who = _principal(args, 'alert')
        r = (acknowledge if args.action == 'ack' else resolve)(store, args.id, actor=who.name, note=args.note or '')
        print(f'alert {r["alert_id"]} ({r["rule"]} {r["subject"]}) is now {r["state"]}')
    elif args.action == 'history':
        if not args.id: raise WildproofError('alerts history needs an alert id')
        print(_table(alert_history(store, args.id)))
    else:
        a = alerts(store, model=args.model, state=args.state)
        print(_table(a[['alert_id', 'model', 'rule', 'subject', 'severity', 'state', 'window_start', 'message']]) if len(a) else 'no alerts')


def cmd_drilldown(args):
    from wildproof.monitoring import drill_down
    print(drill_down(_store(args), args.model, args.window, as_of=args.as_of, granularity=args.every, settings=args.settings, engine=args.engine))


def cmd_retrain(args):
    from wildproof.retraining import request_retraining, retrain, triggers
    store = _store(args)
    model = _model(args)
    who = _principal(args, 'retrain') if args.force or args.as_name else None
    why = triggers(store, model, as_of=args.as_of, settings=args.settings)
    if not why and not args.force: print(f'{model}: no retraining trigger fired ([retraining] triggers = {args.settings.retraining.triggers})'); return
    why = why or ['requested by hand (--force)']
    rid = request_retraining(store, model, why, actor=who.name if who else os.environ.get('USER') or 'cli')
    print(f'retraining request {rid}: {"; ".join(why)}')
    print(retrain(store, model, rid, as_of=args.as_of, settings=args.settings))


def cmd_canary(args):
    from wildproof.retraining import judge_canary
    j = judge_canary(_store(args), _model(args), start=args.since, as_of=args.as_of, settings=args.settings)
    print(f'canary v{j["canary"]} of {j["model"]}: {j["verdict"]} ({j["reason"]})')


def cmd_report(args):
    from wildproof import reports
    store = _store(args)
    if args.kind == 'list':
        r = reports.index(store, kind=args.args[0] if args.args else None)
        if not len(r): print('no reports yet'); return
        r = r.assign(run=r.run_id.str[:12], created=pd.to_datetime(r.created_at).dt.strftime('%Y-%m-%d %H:%M'), verdict=[
            json.loads(x)['verdict'] if isinstance(x, str) else '' for x in r.summary_json])
        print(_table(r[['run', 'kind', 'model', 'version', 'name', 'status', 'verdict', 'created', 'path']]))
        return
    if args.kind == 'diff':
        if len(args.args) != 2: raise WildproofError('report diff needs two run ids (see `wildproof report list`)')
        d = reports.diff(store, *args.args)
        print(f'{d["kind"]}: {d["a"]} -> {d["b"]}')
        print(f'verdict: {d["verdict"][0]} -> {d["verdict"][1]}' if d['verdict'][0] != d['verdict'][1] else f'verdict: {d["verdict"][0]} (unchanged)')
        print('metrics changed:' if len(d['metrics']) else 'metrics: unchanged')
        if len(d['metrics']): print(_table(d['metrics'].round(4)))
        for k, what in (('alerts_added', 'alerts added'), ('alerts_cleared', 'alerts cleared')):
            if d[k]: print(f'{what}: ' + '; '.join(d[k]))
        return
    if args.parameters:
        for k, v in reports.template_parameters(args.kind).items():
            if k not in reports.COMMON: print(f'{k} = {v["default"]}    # {v["help"]}')
        return
    params = {}
    for a in args.args:
        k, eq, v = a.partition('=')
        if not eq or not k: raise WildproofError(f'parameters are key=value, not {a!r} (see `wildproof report {args.kind} --parameters`)')
        params[k.strip()] = v.strip()
    if args.engine:
        if args.kind not in reports.ENGINE_KINDS:
            raise WildproofError(f'the {args.kind} report computes nothing, so it takes no --engine (the {" and ".join(reports.ENGINE_KINDS)} reports do'
                                 + ('; to evaluate on Spark: `wildproof evaluate MODEL VERSION SNAPSHOT --engine spark`, then gate that evaluation)' if args.kind == 'evaluation' else ')'))
        if params.get('engine', args.engine) != args.engine: raise WildproofError(f'--engine {args.engine} and engine={params["engine"]}: give one')
        params['engine'] = args.engine
    who = _principal(args, 'report')
    r = reports.run_report(args.kind, params, store=store, settings=args.settings, actor=who.name)
    if r['status'] == 'exists':
        e = reports.run_engine(r)
        print(f'already reported with the same inputs (run {r["run_id"][:12]}' + (f', made on {e}' if e else '') + f'): {r["path"]}'); return
    if r['status'] == 'failed':
        print(f'report FAILED (run {r["run_id"][:12]}): {r["error"]}\npartial notebook kept in {r["path"]}', file=sys.stderr)
        return 1
    s = json.loads(r['summary_json'])
    print(f'{args.kind} report of {r["model"]} v{r["version"]} {r["name"]}: {s["verdict"]}, {len(s["alerts"])} alert(s) (run {r["run_id"][:12]}, {r["duration_s"]:.1f} s'
          + (f', engine {s["engine"]}' if s.get('engine') else '') + ')')
    print(r['path'])


def cmd_schedule(args):
    from wildproof import schedule
    if args.action == 'serve':
        print(f'running the schedule every {args.settings.schedule.interval_seconds} s; Ctrl-C stops', flush=True)
        schedule.serve(_store(args), settings=args.settings, echo=lambda m: print(m, flush=True))
        return
    if args.action == 'due':
        for job in args.job or schedule.JOBS:
            print(f'{job}: {len(schedule.due(_store(args), job, as_of=args.as_of, settings=args.settings))} report(s) to check')
        return
    r = schedule.run(_store(args), jobs=args.job, as_of=args.as_of, settings=args.settings, force=args.force)
    bad = r[r.status.isin(['failed', 'error'])]
    for x in bad.itertuples(): print(f'{x.job} {x.model or ""} v{x.version or ""}: {x.status}: {x.error}', file=sys.stderr)
    return 1 if len(bad) else 0


def dashboards_command(store_root, settings, *, host: str, port: int, auth: str | None = None) -> tuple[list[str], dict]:
    "The `panel serve` command line (and environment) that serves apps/*.py over the store at `store_root`: read-only, except an approver's approval from the model card."
    import secrets
    apps = Path(__file__).resolve().parents[2] / 'apps'
    files = sorted(str(f) for f in apps.glob('*.py'))
    if not files: raise WildproofError(f'no dashboard apps in {apps}: the dashboards run from a checkout of wildproof')
    root = Path(store_root or settings.store.root).resolve()
    if not (root / 'store.json').is_file(): raise WildproofError(f'no wildproof store at {root}: run `wildproof demo` or point --store at one')
    cmd = [sys.executable, '-m', 'panel', 'serve', *files, '--address', host, '--port', str(port), '--allow-websocket-origin', f'{host}:{port}',
           '--warm', '--num-procs', '1']
    rep = Path(settings.reports.root) if settings.reports.root else root / 'reports'
    if rep.is_dir(): cmd += ['--static-dirs', f'reports={rep}']
    env = dict(os.environ, WILDPROOF_STORE_ROOT=str(root), MLFLOW_DISABLE_TELEMETRY='true')
    if (auth or settings.dashboard.auth) == 'basic':
        from wildproof import logins, principals
        users = Path(settings.access.principals_file).resolve()
        try:
            if not any(p['kind'] == 'person' for p in principals.list_principals(users, missing_ok=False)):
                raise principals.AccessError(f'{users} has no people: add one with `wildproof user add NAME --role stakeholder` (or `wildproof dashboard-user NAME`)')
        except principals.AccessError as e:
            raise WildproofError(f'[dashboard] auth = basic: {e} (or set [access] principals_file; auth = none serves without a login, for local use only)') from None
        if logins.loose_permissions(users): print(f'warning: others than its owner may read {users}: chmod 600 it', file=sys.stderr)
        cmd += ['--auth-module', str(Path(logins.__file__).with_name('dashboard_auth.py')),
                '--cookie-secret', settings.dashboard.cookie_secret or secrets.token_hex(32)]
        env['WILDPROOF_ACCESS_PRINCIPALS_FILE'] = str(users)
    return cmd, env


def cmd_dashboards(args):
    import subprocess
    st = args.settings
    port = args.port or st.dashboard.port
    cmd, env = dashboards_command(args.store, st, host=args.host, port=port, auth='none' if args.no_auth else None)
    print(f'dashboards on http://{args.host}:{port}/drift and http://{args.host}:{port}/model_card '
          f'({"login required" if "--auth-module" in cmd else "no login"}; Ctrl-C stops)', flush=True)
    return subprocess.run(cmd, env=env).returncode


def _new_password(args, name: str) -> str:
    "A new password for `name`: the first line of standard input with --password-stdin, else asked twice."
    import getpass
    if args.password_stdin: return sys.stdin.readline().rstrip('\n')
    password = getpass.getpass(f'password for {name}: ')
    if getpass.getpass('again: ') != password: raise WildproofError('the two passwords differ: nothing changed')
    return password


def cmd_dashboard_user(args):
    import getpass
    from wildproof import principals
    path = principals.principals_file(args.settings)
    store = _principals_store(args)
    if args.remove:
        if args.name not in {p['name'] for p in principals.list_principals(path) if p['kind'] == 'person'}:
            raise WildproofError(f'no user {args.name!r} in {path}')
        principals.remove(path, args.name, store=store, actor=getpass.getuser())
        print(f'removed {args.name} from {path}')
        return 0
    password = _new_password(args, args.name)
    known = {p['name']: p for p in principals.list_principals(path) if p['kind'] == 'person'}
    roles = known[args.name]['roles'] if args.name in known else ['stakeholder']
    existed = principals.add_person(path, args.name, password, roles, store=store, actor=getpass.getuser())
    print(f'{"changed the password of" if existed else "added"} {args.name} ({", ".join(roles)}) in {path} (scrypt hash; the file is readable by its owner only)')
    return 0


def _principals_store(args):
    "The store that records changes to the principals (its principal_changes, on the governance record), or None when there is no store yet."
    root = Path(args.store) if args.store else Path(args.settings.store.root)
    return _store(args) if (root / 'store.json').is_file() else None


def _recorded(store) -> str:
    return ' (recorded in principal_changes)' if store is not None else ' (no store yet: not on the governance record)'


def cmd_user(args):
    import getpass
    from wildproof import principals
    path = principals.principals_file(args.settings)
    actor = getpass.getuser()   # who may change the principals: whoever may write the file (0600: its owner)
    if args.action == 'list':
        rows = principals.list_principals(path)
        if not rows: print(f'nobody in {path}: add a person with `wildproof user add NAME --role ROLE`'); return 0
        print(_table(pd.DataFrame([dict(name=r['name'], kind=r['kind'], roles=', '.join(r.get('roles', r.get('scopes', []))),
                                        ssh_key=(r['ssh_key'].split()[0] if r.get('ssh_key') else ''), created=r['created_at']) for r in rows])
                     .rename(columns={'roles': 'roles / scopes'})))
        return 0
    if not args.name: raise WildproofError(f'user {args.action} needs a NAME')
    if args.action in ('add', 'roles') and not args.role:
        raise WildproofError(f'user {args.action} needs at least one --role (roles: {", ".join(principals.ROLES)})')
    if getattr(args, 'role', None): principals._check_list(args.role, principals.ROLES, 'role')   # before asking a password
    store = _principals_store(args)
    if args.action == 'add':
        key = None
        if args.ssh_key:
            f = Path(args.ssh_key)
            if not f.is_file(): raise WildproofError(f'no SSH public key file {f}')
            key = f.read_text(encoding='utf-8', errors='replace')
        known = {p['name'] for p in principals.list_principals(path) if p['kind'] == 'person'}
        password = None if args.name in known and args.keep_password else _new_password(args, args.name)
        existed = principals.add_person(path, args.name, password, args.role, ssh_key=key, store=store, actor=actor)
        print(f'{"changed" if existed else "added"} {args.name}: {", ".join(args.role)}{", with an SSH key for signatures" if key else ""} '
              f'in {path}{_recorded(store)}')
    elif args.action == 'roles':
        principals.set_roles(path, args.name, args.role, store=store, actor=actor)
        print(f'{args.name} now has the roles {", ".join(args.role)} (in force at once){_recorded(store)}')
    elif args.action == 'remove':
        kind = principals.remove(path, args.name, store=store, actor=actor)
        print(f'removed the {kind} {args.name} from {path}{_recorded(store)}')
    return 0


def cmd_service_token(args):
    import getpass
    from wildproof import principals
    path = principals.principals_file(args.settings)
    store = _principals_store(args)
    if args.revoke:
        if args.scope: raise WildproofError('--revoke takes no --scope')
        principals.revoke_client(path, args.name, store=store, actor=getpass.getuser())
        print(f'revoked the token of {args.name}: a running service refuses it within [access] token_reload_seconds '
              f'({args.settings.access.token_reload_seconds:g} s){_recorded(store)}')
        return 0
    if not args.scope: raise WildproofError(f'service-token {args.name} needs at least one --scope (scopes: {", ".join(principals.SCOPES)})')
    token = principals.add_client(path, args.name, args.scope, store=store, actor=getpass.getuser())
    print(f'token of {args.name} (scopes {", ".join(dict.fromkeys(args.scope))}), shown this once; only its SHA-256 is kept in {path}:\n'
          f'{token}\n'
          f'the client sends it with each request as the header\n  Authorization: Bearer {token}\n'
          f'keep it in the client\'s secret store; to rotate it, add a new client, deploy its token, then '
          f'`wildproof service-token {args.name} --revoke`{_recorded(store)}')
    return 0


def cmd_new(args):
    import shutil
    here = Path(__file__).with_name('starter')
    dest = Path(args.path)
    files = [(here / 'starter.ipynb', dest / 'starter.ipynb'), (here / 'features.py', dest / 'features.py')]
    there = [str(d) for _, d in files if d.exists()]
    if there: raise WildproofError(f'{", ".join(there)} exist already: nothing written (choose another folder)')
    dest.mkdir(parents=True, exist_ok=True)
    for src, d in files: shutil.copyfile(src, d)
    print(f'wrote {files[0][1]} and {files[1][1]}: open the notebook in JupyterLab, set its parameters (your data, target, task), '
          f'run it top to bottom; your own features go in {files[1][1].name}')


def cmd_demo(args):
    from wildproof.examples.credit.demo import run_demo
    run_demo(settings=args.settings, rows=args.rows, seed=args.seed, store_root=args.store, fresh=not args.keep, spark=not args.no_spark)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='wildproof', description='Carry a tabular model from the notebook to production and keep it honest there.')
    p.add_argument('--version', action='version', version=f'wildproof {__version__}')
    p.add_argument('--store', metavar='DIR', help='store root (default: [store] root from settings.ini)')
    sub = p.add_subparsers(dest='command', metavar='COMMAND', required=True)

    def add(name, func, help):
        s = sub.add_parser(name, help=help, description=help); s.set_defaults(func=func); return s

    s = add('demo', cmd_demo, 'Run the whole lifecycle on the credit example (wildproof.examples.credit) and print where the results are')
    s.add_argument('--rows', type=int, help='rows of the example world to generate (default: [demo] rows)')
    s.add_argument('--seed', type=int, help='seed of the world (default: [demo] seed)')
    s.add_argument('--keep', action='store_true', help='keep what an earlier demo left in the store (default: start from an empty demo store)')
    s.add_argument('--no-spark', action='store_true', help='skip validating the incident week again on Spark (run where pyspark and Java are installed; '
                   'its session start costs tens of seconds)')
    s = add('new', cmd_new, 'Write a starter notebook (and a features module) that walks your own data and model through the lifecycle')
    s.add_argument('path', help='folder to write starter.ipynb and features.py into (created if missing)')
    add('settings', cmd_settings, 'Print the settings in force and where each value came from')
    add('status', cmd_status, 'Print what the store holds: its tables, their rows, its schema version')
    s = add('ingest', cmd_ingest, 'Ingest a CSV or Parquet file as an immutable snapshot of a dataset')
    s.add_argument('dataset', help='dataset name (letters, digits, _ . -)')
    s.add_argument('source', help='CSV or Parquet file')
    s.add_argument('--encoding', default='utf-8', help='text encoding of a CSV file (default utf-8)')
    s = add('snapshots', cmd_snapshots, 'List the snapshots in the store')
    s.add_argument('dataset', nargs='?', help='only this dataset')

    c = add('contract', None, 'Infer, register, show and list data contracts')
    csub = c.add_subparsers(dest='action', metavar='ACTION', required=True)
    def cadd(name, func, help):
        s = csub.add_parser(name, help=help, description=help); s.set_defaults(func=func); return s
    s = cadd('infer', cmd_contract_infer, 'Infer a contract from a reference snapshot, register it and write it as YAML')
    s.add_argument('snapshot', help='reference snapshot id (dataset@hash or dataset@latest)')
    s.add_argument('--name', help='contract name (default: the dataset name)')
    s.add_argument('--key', help='column whose values must be unique')
    s.add_argument('--time-column', help='column of event times (may not lie in the future): a timestamp or date column; convert an integer year or text first')
    s.add_argument('--exclude', nargs='*', help='columns the contract leaves out (labels, for example)')
    s.add_argument('-o', '--output', help='YAML file to write (default: NAME.contract.yaml)')
    s = cadd('register', cmd_contract_register, 'Register an edited contract file as a new version')
    s.add_argument('file', help='contract YAML file')
    s = cadd('show', cmd_contract_show, 'Print a registered contract as YAML')
    s.add_argument('name'); s.add_argument('--version', type=int, help='version (default: latest)')
    cadd('list', cmd_contract_list, 'List registered contracts and their versions')

    s = add('validate', cmd_validate, 'Validate a batch (a file, which is ingested first, or a snapshot id) against a contract; exit 1 when rejected')
    s.add_argument('batch', help='CSV or Parquet file, or snapshot id')
    s.add_argument('--contract', required=True, help='contract name in the store, or a contract YAML file')
    s.add_argument('--dataset', help='dataset to ingest a file into (default: the contract\'s dataset)')
    s.add_argument('--encoding', default='utf-8', help='text encoding of a CSV file (default utf-8)')
    s.add_argument('--engine', choices=['duckdb', 'spark'], help='where the checks run (default: [engine] kind; spark: decision 0018)')
    s = add('quarantine', cmd_quarantine, 'List quarantined rows with the rule they broke and why')
    s.add_argument('--validation', help='only this validation id'); s.add_argument('--dataset', help='only this dataset')
    s.add_argument('--snapshot', help='only this snapshot'); s.add_argument('--rule', help='only this rule (range, category, ...)')
    s.add_argument('--limit', type=int, default=50, help='at most this many rows (default 50)')
    m = add('model', None, 'Create, register, show and list model specs: what a model is for, how it decides, what it reads')
    msub = m.add_subparsers(dest='action', metavar='ACTION', required=True)
    def madd(name, func, help):
        s = msub.add_parser(name, help=help, description=help); s.set_defaults(func=func); return s
    s = madd('init', cmd_model_init, 'Start a model spec from a registered contract, register it and write it as YAML')
    s.add_argument('model', help='model name')
    s.add_argument('--contract', required=True, help='the contract the model expects')
    s.add_argument('--target', required=True, help='the outcome column')
    s.add_argument('--task', required=True, choices=['binary', 'multiclass', 'regression'])
    s.add_argument('--positive', help='the positive label of a binary target (default 1)')
    s.add_argument('--threshold', type=float, help='a binary score at or above this takes the second decision (default 0.5)')
    s.add_argument('--decisions', nargs=2, metavar=('BELOW', 'AT_OR_ABOVE'), help='decision labels of a binary model (default negative positive)')
    s.add_argument('--sensitive', nargs='*', help='sensitive attributes fairness is measured over (default: none)')
    s.add_argument('--slices', nargs='*', help='columns evaluation reports per group')
    s.add_argument('--inputs', nargs='*', help='input columns (default: the contract\'s, without key, time, target and logged answers)')
    s.add_argument('--features', help="your feature function, as module:function (default: none)")
    s.add_argument('--outcome-time', help='column saying when each outcome became known')
    s.add_argument('--key', help="entity key (default: the contract's)"); s.add_argument('--time-column', help="time column (default: the contract's)")
    s.add_argument('--primary-metric', help='the metric champion-challenger judges by (default: the task\'s first)')
    s.add_argument('--external', action='store_true', help='a model that runs elsewhere: monitored from its imported predictions')
    s.add_argument('--prediction', help='external: the column of its predicted label or value')
    s.add_argument('--score', help='external: the column of its score (a binary model: the probability of the positive label)')
    s.add_argument('--classes', nargs='*', help='a multiclass model\'s class labels (default: those it learns)')
    s.add_argument('--scores', nargs='*', metavar='CLASS=COLUMN', help='external multiclass: the column of each class\'s probability')
    s.add_argument('-o', '--output', help='YAML file to write (default: MODEL.spec.yaml)')
    s = madd('register', cmd_model_register, 'Register an edited spec file as a new version')
    s.add_argument('file', help='model spec YAML file')
    s = madd('show', cmd_model_show, 'Print a registered model spec as YAML')
    s.add_argument('model'); s.add_argument('--version', type=int, help='version (default: latest)')
    madd('list', cmd_model_list, 'List model specs and their latest versions')
    s = add('train', cmd_train, "Train the spec's default pipeline on a snapshot that passes its contract, log it to MLflow with its lineage and register it as the candidate")
    s.add_argument('snapshot', help='training snapshot (dataset@hash or dataset@latest), with the outcome column')
    s.add_argument('--model', required=True, help='the model (its registered spec says target, task, inputs and features)')
    s.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    _as_args(s, 'trains: the version\'s author, who may not approve it (default: the operating-system user, unauthenticated)')
    s = add('evaluate', cmd_evaluate, 'Evaluate a model version on a snapshot with outcomes: metrics, slices, fairness, baselines, leakage, cost')
    s.add_argument('model'); s.add_argument('version'); s.add_argument('snapshot', help='evaluation snapshot with outcomes')
    s.add_argument('-o', '--output', help='evaluation JSON to write (default MODEL-vVERSION.evaluation.json)')
    s.add_argument('--no-cost', action='store_true', help='skip the latency and throughput measurements')
    s.add_argument('--engine', choices=['duckdb', 'spark'], help="where the evaluation's statistics run (default: [engine] kind; spark: decision 0018)")
    s = add('describe', cmd_describe, "Record a model's owner, intended use, limitations and risk tier")
    s.add_argument('model'); s.add_argument('--owner', required=True); s.add_argument('--use', required=True, help='intended use')
    s.add_argument('--tier', required=True, choices=['low', 'medium', 'high'], help='risk tier: chooses the gate policy')
    s.add_argument('--limitations', help='known limitations')
    _as_args(s, 'describes the model ([access] describe_roles)')
    s = add('gate', cmd_gate, "Judge an evaluation by the gate policy of the model's risk tier; exit 1 when it fails")
    s.add_argument('model'); s.add_argument('version'); s.add_argument('--evaluation', required=True, help='evaluation JSON from `wildproof evaluate`')
    s = add('approve', cmd_approve, 'Approve a model version for production: technical (a validator), business (a business owner) or audit (an auditor)')
    s.add_argument('model'); s.add_argument('version'); s.add_argument('--approver', help=argparse.SUPPRESS)   # retired: --as NAME
    s.add_argument('--role', required=True, choices=['technical', 'business', 'audit'],
                   help="the approval's role; the model's tier says which it needs ([policy_TIER] approvals)"); s.add_argument('--note')
    s.add_argument('--sign-with', metavar='KEY', help='sign the approval with your SSH private key file (its public key in the principals file verifies it)')
    _as_args(s, 'approves')
    s = add('promote', cmd_promote, "Promote a version to staging or production (gate, champion-challenger and the tier's approvals required)")
    s.add_argument('model'); s.add_argument('version'); s.add_argument('--to', default='production', choices=['staging', 'production'])
    s.add_argument('--reason')
    _as_args(s, 'promotes ([access] promote_roles)')
    s = add('rollback', cmd_rollback, 'Put the previous production version back into production')
    s.add_argument('model'); s.add_argument('--reason')
    _as_args(s, 'rolls back ([access] rollback_roles)')
    s = add('card', cmd_card, 'Write the model card of a version (Markdown, HTML, JSON) from the recorded evidence')
    s.add_argument('model'); s.add_argument('version')
    s = add('models', cmd_models, 'The model inventory: every version with stage, risk tier, owner, gate and approvals')
    s.add_argument('--history', metavar='MODEL', help='also print the production history of MODEL')
    s = add('serve', cmd_serve, 'Serve the production model over REST (FastAPI, uvicorn) with the traffic policy of [serving]')
    s.add_argument('--host', help='address to listen on (default: [serving] host, 127.0.0.1)')
    s.add_argument('--port', type=int, help='port (default: [serving] port)')
    s.add_argument('--model', help='registered model (default: [serving] model)')
    s.add_argument('--workers', type=int, help='worker processes sharing the port, each with its own copy of the model (default: [serving] workers, else one per CPU core)')
    s.add_argument('--no-auth', action='store_true', help='serve without bearer tokens whatever [serving] auth says (only on 127.0.0.1)')
    s = add('score', cmd_score, 'Score a snapshot in batch with the serving core: contract, features, routes, fallback, audit log')
    s.add_argument('snapshot', help='snapshot to score (dataset@hash or dataset@latest)')
    s.add_argument('--model', help='registered model (default: [serving] model)')
    a = add('audit', None, 'Verify, trim and read the prediction audit log')
    asub = a.add_subparsers(dest='action', metavar='ACTION', required=True)
    s = asub.add_parser('verify', help='Check the hash chain of every record, and the governance record (printed when broken); exit 1 when a record was changed, inserted or deleted')
    s.set_defaults(func=cmd_audit_verify)
    s = asub.add_parser('retention', help='Remove records past the retention period ([audit] retention_days), recording the removal')
    s.set_defaults(func=cmd_audit_retention); s.add_argument('--days', type=int, help='override the retention period')
    s = asub.add_parser('tail', help='The latest prediction records'); s.set_defaults(func=cmd_audit_tail)
    s.add_argument('-n', type=int, default=20, help='how many (default 20)'); s.add_argument('--route', choices=['champion', 'canary', 'shadow', 'fallback', 'invalid'])
    s = asub.add_parser('show', help='Every record of one request: what the model saw (inputs, features by name) and what it answered')
    s.set_defaults(func=cmd_audit_show); s.add_argument('request_id')
    g_ = add('governance', None, 'Verify and read the chained record of every governance decision (inventory, verdicts, approvals, aliases, principal changes)')
    gsub = g_.add_subparsers(dest='action', metavar='ACTION', required=True)
    s = gsub.add_parser('verify', help='Check the chain, every governed row against its record and every signed approval; exit 1 on any problem',
                        description='Check the chain, every governed row against its record and every signed approval; exit 1 on any problem')
    s.set_defaults(func=cmd_governance_verify)
    s.add_argument('--principals', metavar='FILE', help="principals file holding the approvers' ssh_key (default: [access] principals_file)")
    s = gsub.add_parser('log', help='The governance record in order: who did what, when', description='The governance record in order: who did what, when')
    s.set_defaults(func=cmd_governance_log)
    s.add_argument('--model', help='only the records of this model'); s.add_argument('-n', type=int, help='only the latest N records')
    s = add('outcomes', cmd_outcomes, "Record outcomes that arrived later (CSV or Parquet: request_id or entity_key, outcome, observed_at; or a model's key and target columns)")
    s.add_argument('file')
    s.add_argument('--model', help="read the file's key and target columns through this model's spec (default: the spec whose key and target the file holds)")
    p_ = add('predictions', None, 'Import the logged predictions of a model that runs elsewhere (external: true in its spec)')
    psub = p_.add_subparsers(dest='action', metavar='ACTION', required=True)
    s = psub.add_parser('import', help="Ingest a CSV or Parquet log of the model's answers, gate it by the spec's contract and record every accepted row in the audit log",
                        description="Ingest a CSV or Parquet log of the model's answers, gate it by the spec's contract and record every accepted row in the audit log")
    s.set_defaults(func=cmd_predictions_import)
    s.add_argument('model', help='an external model (wildproof model init NAME ... --external --prediction COL --score COL)')
    s.add_argument('file', help='CSV or Parquet: inputs, prediction and score columns, key, time')
    s.add_argument('--dataset', help='dataset to ingest the file into (default: MODEL_predictions)')
    s = add('replay', cmd_replay, 'Replay served requests through a challenger version: disagreement, and ROC AUC difference where outcomes exist')
    s.add_argument('version', help='challenger version'); s.add_argument('--model', help='registered model (default: [serving] model)')
    s.add_argument('--start', type=_when, help='from this event time (e.g. 2024-07-01)'); s.add_argument('--end', type=_when, help='before this event time')
    s = add('monitor', cmd_monitor, 'Compute the monitoring windows that are due (or one window) for one model or every production model, and judge alerts')
    s.add_argument('--model', help='one model (default: every model with a production version)')
    s.add_argument('--window', type=_when, help='compute only the window holding this date (e.g. 2025-04-09)')
    s.add_argument('--as-of', type=_when, help='outcomes observed by this time count; windows ending by it are due (default: now)')
    s.add_argument('--every', choices=['day', 'week', 'month'], help='window size (default: [monitoring] window)')
    s.add_argument('--chunk-rows', type=int, metavar='N', help='windows of N answers each in event-time order, instead of calendar windows')
    s.add_argument('--engine', choices=['duckdb', 'spark'], help="where the windows' statistics run (default: [engine] kind; spark: decision 0018)")
    s = add('alerts', cmd_alerts, 'List alerts, or acknowledge, resolve or show the history of one')
    s.add_argument('action', nargs='?', default='list', choices=['list', 'ack', 'resolve', 'history'])
    s.add_argument('id', nargs='?', help='alert id (a unique prefix is enough)')
    s.add_argument('--by', help=argparse.SUPPRESS); s.add_argument('--note')
    _as_args(s, 'acknowledges or resolves ([access] alert_roles)')
    s.add_argument('--state', choices=['open', 'acknowledged', 'resolved']); s.add_argument('--model')
    s = add('drill-down', cmd_drilldown, 'Write an Evidently report (drift of the inputs and the predictions; the task\'s quality where outcomes are known) of one monitoring window')
    s.add_argument('model'); s.add_argument('window', type=_when, help='a date inside the window (e.g. 2025-04-09)')
    s.add_argument('--as-of', type=_when, help='outcomes observed by this time count (default: now)')
    s.add_argument('--every', choices=['day', 'week', 'month'], help='window size (default: [monitoring] window)')
    s.add_argument('--engine', choices=['duckdb', 'spark'], help="where the window's inputs are read (default: [engine] kind; spark: decision 0018)")
    s = add('retrain', cmd_retrain, 'If a retraining trigger fired (or with --force), train a challenger on matured served data, gate and challenge it, and stage it for the canary')
    s.add_argument('--model', help='registered model (default: [serving] model)')
    s.add_argument('--as-of', type=_when, help='outcomes observed by this time count (default: now)')
    s.add_argument('--force', action='store_true', help='retrain even if no trigger fired (needs --as NAME: [access] retrain_roles)')
    _as_args(s, 'asks for the retraining (needed with --force)')
    s = add('canary', cmd_canary, "Judge the canary's answers against the champion's; a worse canary leaves staging")
    s.add_argument('--model', help='registered model (default: [serving] model)')
    s.add_argument('--since', type=_when, help='only answers from this event time on'); s.add_argument('--as-of', type=_when, help='outcomes observed by this time count')
    s = add('report', cmd_report, 'Run a report template into a versioned, immutable folder; list runs; diff two runs')
    s.add_argument('kind', choices=['validation', 'evaluation', 'monitoring', 'model_card', 'list', 'diff'])
    s.add_argument('args', nargs='*', metavar='ARG', help='key=value parameters of the template; for diff: two run ids; for list: a kind')
    s.add_argument('--parameters', action='store_true', help="print the template's parameters with their defaults and help")
    s.add_argument('--engine', choices=['duckdb', 'spark'], help='validation and monitoring: where what the store does not hold yet is computed '
                   '(the same as engine=; default: [engine] kind)')
    _as_args(s, 'runs a report that writes ([access] report_roles)')
    s = add('schedule', cmd_schedule, 'Run the report jobs of [schedule] that are due (from cron), or keep running them (serve)')
    s.add_argument('action', choices=['run', 'serve', 'due'])
    s.add_argument('--job', action='append', choices=['validation', 'evaluation', 'monitoring', 'model_card'], help='only this job (repeatable)')
    s.add_argument('--as-of', type=_when, help='windows ending by this time are due (default: now)')
    s.add_argument('--force', action='store_true', help='run monitoring even if its last pass is more recent than [schedule] monitoring')
    s = add('dashboards', cmd_dashboards, 'Serve the stakeholder dashboards (drift; model card and inventory) with panel serve: read-only, except that a logged-in approver may approve the version shown')
    s.add_argument('--host', default='127.0.0.1', help='address to listen on (default 127.0.0.1)')
    s.add_argument('--port', type=int, help='port (default: [dashboard] port)')
    s.add_argument('--no-auth', action='store_true', help='serve without a login whatever [dashboard] auth says (local use only)')
    u = add('user', None, 'Add, change, remove and list the people who may act (with roles) and the service clients ([access] principals_file)')
    usub = u.add_subparsers(dest='action', metavar='ACTION', required=True)
    for name, help in (('add', 'Add a person with roles (or change one: roles, password, SSH key); the password is asked twice and kept as a scrypt hash'),
                       ('roles', "Replace a person's roles (in force at once)"), ('remove', 'Remove a person or a service client'),
                       ('list', 'List the people (roles) and service clients (scopes), never a secret')):
        s = usub.add_parser(name, help=help, description=help); s.set_defaults(func=cmd_user)
        if name != 'list': s.add_argument('name')
        if name in ('add', 'roles'):
            s.add_argument('--role', action='append', metavar='ROLE', help='developer, validator, business_owner, auditor, operator or stakeholder (repeatable)')
        if name == 'add':
            s.add_argument('--ssh-key', metavar='PUBFILE', help='their SSH public key (.pub), which verifies the approvals they sign with ssh-keygen -Y sign')
            s.add_argument('--password-stdin', action='store_true', help='read the password from the first line of standard input (for scripts)')
            s.add_argument('--keep-password', action='store_true', help='a person already there keeps their password (change only roles or key)')
    s = add('service-token', cmd_service_token, 'Create a bearer token for a service client of the REST service (shown once, kept as its SHA-256), or revoke it')
    s.add_argument('name', help='the client (a program, not a person)')
    s.add_argument('--scope', action='append', choices=['predict', 'outcomes', 'admin'], help='what it may call: predict, outcomes, admin (all); repeatable')
    s.add_argument('--revoke', action='store_true', help='remove the client: its token is refused within [access] token_reload_seconds')
    s = add('dashboard-user', cmd_dashboard_user, 'Add a dashboard user (a stakeholder) or change their password (asked twice; kept as a scrypt hash), or remove them')
    s.add_argument('name')
    s.add_argument('--remove', action='store_true', help='remove the user')
    s.add_argument('--password-stdin', action='store_true', help='read the password from the first line of standard input (for scripts)')
    return p


def main(argv=None) -> int:
    os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')
    os.environ.setdefault('MLFLOW_LOGGING_LEVEL', 'WARNING')   # 'Creating initial MLflow database tables' is not news to a user
    args = parser().parse_args(argv)
    try:
        args.settings = load_settings()
        return args.func(args) or 0
    except WildproofError as e:
        print(f'wildproof: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('wildproof: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
