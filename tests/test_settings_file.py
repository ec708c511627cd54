"""The repository's settings.ini and the settings specification in the code agree."""
import configparser
from pathlib import Path

import pytest

from wildproof.settings import RETIRED, SPEC, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / 'settings.ini'
KEYS = {(k.section, k.name): k for k in SPEC}


def file_values() -> dict:
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=('#',))
    cp.read_string(FILE.read_text(encoding='utf-8'))
    return {(s, n): v for s in cp.sections() for n, v in cp.items(s)}


def test_file_parses():
    s = load_settings(FILE, env={})
    assert s.file == FILE
    assert set(s.sources.values()) == {str(FILE)}  # every value comes from the file
    assert s.mlflow.tracking_uri == '' and s.mlflow.artifact_location is None  # empty: inside the store root
    assert s.store.root == ROOT / '.wildproof'  # relative paths resolve against the file's folder


def test_file_and_spec_have_the_same_keys():
    have = set(file_values())
    assert have - set(KEYS) == set(), 'keys in settings.ini that the code does not know'
    assert set(KEYS) - have == set(), 'settings the code knows that settings.ini does not document'
    assert len(SPEC) == len(KEYS), 'a key is specified twice'


@pytest.mark.parametrize('key', SPEC, ids=lambda k: f'{k.section}.{k.name}')
def test_file_value_is_the_default(key):
    raw = file_values()[(key.section, key.name)]
    assert key.parse(raw) == key.parse(key.default)


def test_loaded_file_equals_defaults(tmp_path, monkeypatch):
    "Loaded from the repository root, the file and the bare defaults give the same typed settings."
    monkeypatch.chdir(ROOT)
    empty = tmp_path / 'empty.ini'; empty.write_text('')
    assert load_settings(FILE, env={}) == load_settings(empty, env={})


def test_every_key_is_documented_by_a_comment():
    lines = FILE.read_text(encoding='utf-8').splitlines()
    keys = file_values()
    section, seen = None, set()
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith('['): section = s.strip('[]'); continue
        if not s or s.startswith(('#', ';')): continue
        name = s.split('=', 1)[0].strip()
        assert (section, name) in keys, f'line {i + 1}: {line!r}'
        prev = lines[i - 1].strip()
        assert prev.startswith('#') and len(prev.lstrip('# ')) > 10, f'[{section}] {name} (line {i + 1}) has no comment above it'
        seen.add((section, name))
    assert seen == set(keys)


# one override per key, of a value other than the default; the expected typed value (None: the resolved path)
OVERRIDES = {
    ('store', 'root'): ('/srv/wildproof', Path('/srv/wildproof')),
    ('mlflow', 'tracking_uri'): ('sqlite:////srv/mlflow.db', 'sqlite:////srv/mlflow.db'),
    ('mlflow', 'artifact_location'): ('artifacts/ml', None),
    ('contract', 'range_margin'): ('0.25', 0.25),
    ('contract', 'null_share_margin'): ('0.05', 0.05),
    ('contract', 'max_categories'): ('12', 12),
    ('contract', 'max_length_factor'): ('2.5', 2.5),
    ('gate', 'max_quarantine_share'): ('0.1', 0.1),
    ('sla', 'latency_p95_ms'): ('120', 120.0),
    ('schedule', 'monitoring'): ('Hourly', 'hourly'),
    ('schedule', 'evaluation'): ('off', 'off'),
    ('schedule', 'model_card'): ('OFF', 'off'),
    ('schedule', 'validation'): ('all', 'all'),
    ('schedule', 'interval_seconds'): ('60', 60),
    ('reports', 'root'): ('out/reports', None),
    ('reports', 'log_to_mlflow'): ('no', False),
    ('reports', 'cell_timeout_seconds'): ('30', 30),
    ('dashboard', 'auth'): ('none', 'none'),
    ('access', 'principals_file'): ('/etc/wildproof/principals.json', Path('/etc/wildproof/principals.json')),
    ('access', 'token_reload_seconds'): ('0.5', 0.5),
    ('access', 'describe_roles'): ('validator', ('validator',)),
    ('access', 'promote_roles'): ('operator, developer', ('operator', 'developer')),
    ('access', 'rollback_roles'): ('auditor', ('auditor',)),
    ('access', 'alert_roles'): ('operator, stakeholder', ('operator', 'stakeholder')),
    ('access', 'retrain_roles'): ('operator', ('operator',)),
    ('access', 'report_roles'): ('auditor', ('auditor',)),
    ('serving', 'auth'): ('None', 'none'),
    ('serving', 'rate_limit_per_second'): ('5.5', 5.5),
    ('serving', 'rate_limit_burst'): ('10', 10),
    **{(f'policy_{t}', 'approvals'): ('audit', ('audit',)) for t in ('low', 'medium', 'high')},
    **{(f'policy_{t}', 'author_may_approve'): ('yes', True) for t in ('low', 'medium', 'high')},
    ('dashboard', 'port'): ('8080', 8080),
    ('dashboard', 'cookie_secret'): ('s3cret', 's3cret'),
    ('engine', 'kind'): ('Spark', 'spark'),
    ('engine', 'spark_master'): ('spark://head:7077', 'spark://head:7077'),
    ('engine', 'spark_options'): ('spark.executor.memory=8g, spark.sql.shuffle.partitions=400',
                                  {'spark.executor.memory': '8g', 'spark.sql.shuffle.partitions': '400'}),
    ('engine', 'spark_delta'): ('true', True),
    ('demo', 'rows'): ('10000', 10000),
    ('demo', 'seed'): ('-3', -3),
    ('demo', 'reference_months'): ('3', 3),
    ('mlflow', 'experiment'): ('credit-risk', 'credit-risk'),
    ('serving', 'host'): ('0.0.0.0', '0.0.0.0'),
    ('serving', 'port'): ('9001', 9001),
    ('serving', 'model'): ('churn', 'churn'),
    ('serving', 'challenger_alias'): ('challenger', 'challenger'),
    ('serving', 'canary_share'): ('0.05', 0.05),
    ('serving', 'shadow'): ('yes', True),
    ('serving', 'unsure_band'): ('0.2, 0.3', (0.2, 0.3)),
    ('serving', 'fallback_decision'): ('refer to underwriting', 'refer to underwriting'),
    ('serving', 'max_records'): ('10', 10),
    ('serving', 'max_body_kb'): ('64', 64),
    ('serving', 'reload_seconds'): ('0.5', 0.5),
    ('serving', 'workers'): ('3', 3),
    ('audit', 'retention_days'): ('30', 30),
    ('audit', 'drain_seconds'): ('2', 2.0),
    ('monitoring', 'window'): ('Month', 'month'),
    ('monitoring', 'psi_watch'): ('0.05', 0.05),
    ('monitoring', 'psi_alert'): ('0.25', 0.25),
    ('monitoring', 'noise_quantile'): ('0.95', 0.95),
    ('monitoring', 'min_label_completeness'): ('0.8', 0.8),
    ('monitoring', 'max_accuracy_drop'): ('0.05', 0.05),
    ('monitoring', 'max_fallback_rate'): ('0.1', 0.1),
    ('monitoring', 'max_error_rate'): ('0.02', 0.02),
    ('monitoring', 'max_quarantine_share'): ('0.1', 0.1),
    ('monitoring', 'thresholds'): ('reference_chunks', 'reference_chunks'),
    ('monitoring', 'threshold_k'): ('2.5', 2.5),
    ('monitoring', 'drift_statistic'): ('js', 'js'),
    ('monitoring', 'calibration'): ('never', 'never'),
    ('retraining', 'triggers'): ('outcomes', 'outcomes'),
    ('retraining', 'min_new_outcomes'): ('500', 500),
    ('retraining', 'training_months'): ('6', 6),
    ('evaluation', 'bootstrap'): ('50', 50),
    ('evaluation', 'confidence'): ('0.9', 0.9),
    ('evaluation', 'min_slice_support'): ('30', 30),
    ('evaluation', 'recent_months'): ('1', 1),
    ('evaluation', 'leakage_auc'): ('0.99', 0.99),
    **{(f'policy_{t}', 'min_roc_auc'): ('0.6', 0.6) for t in ('low', 'medium', 'high')},
    **{(f'policy_{t}', 'min_baseline_margin'): ('0.05', 0.05) for t in ('low', 'medium', 'high')},
    **{(f'policy_{t}', 'max_equalized_odds_gap'): ('0.3', 0.3) for t in ('low', 'medium', 'high')},
    **{(f'policy_{t}', 'max_slice_drop'): ('0.1', 0.1) for t in ('low', 'medium', 'high')},
    **{(f'policy_{t}', 'max_brier_increase'): ('0.2', 0.2) for t in ('low', 'medium', 'high')},
    **{(f'policy_{t}', k): (raw, want) for t in ('low', 'medium', 'high') for k, raw, want in (
        ('min_r2', '0.4', 0.4), ('max_rmse', '1000', 1000.0), ('max_mae', '500', 500.0), ('max_relative_mae_gap', '0.9', 0.9),
        ('max_relative_mean_error_gap', '0.9', 0.9), ('min_macro_roc_auc', '0.6', 0.6), ('max_log_loss', '0.9', 0.9),
        ('max_accuracy_gap', '0.3', 0.3), ('max_recall_gap', '0.3', 0.3))},
    ('evaluation', 'leakage_r2'): ('0.8', 0.8),
    ('monitoring', 'max_error_increase'): ('0.2', 0.2),
}


def test_overrides_cover_every_key():
    assert set(OVERRIDES) == set(KEYS)


@pytest.mark.parametrize('key', SPEC, ids=lambda k: f'{k.section}.{k.name}')
def test_env_override_wins(key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw, want = OVERRIDES[(key.section, key.name)]
    if want is None: want = (tmp_path / raw).resolve()  # a relative path from the environment: against the working directory
    assert key.env == f'WILDPROOF_{key.section}_{key.name}'.upper()
    s = load_settings(FILE, env={key.env: raw})
    got = s[key.section][key.name]
    assert got == want and type(got) is type(want)
    assert got != load_settings(FILE, env={})[key.section][key.name]
    assert s.sources[(key.section, key.name)] == key.env
    assert all(src == str(FILE) for k, src in s.sources.items() if k != (key.section, key.name))  # the others still come from the file
    # it also wins when it comes from the process environment
    monkeypatch.setenv(key.env, raw)
    assert load_settings(FILE)[key.section][key.name] == want


@pytest.mark.parametrize('key', [k for k in SPEC if k.parse.__name__ not in ('_str', '_label')],
                         ids=lambda k: f'{k.section}.{k.name}')
def test_bad_env_value_names_the_key(key):
    with pytest.raises(SettingsError, match=rf'\[{key.section}\] {key.name} from {key.env}: '):
        load_settings(FILE, env={key.env: 'lots'})


def test_unknown_env_variable_is_refused():
    with pytest.raises(SettingsError, match='unknown environment variable WILDPROOF_GATE_MAX_SHARE'):
        load_settings(FILE, env={'WILDPROOF_GATE_MAX_SHARE': '0.1'})
    assert load_settings(FILE, env={'WILDPROOF_SETTINGS': '/nowhere', 'OTHER': 'x'}).gate.max_quarantine_share == 0.2


def test_a_label_is_one_short_line():
    assert load_settings(FILE, env={'WILDPROOF_SERVING_FALLBACK_DECISION': ' hold '}).serving.fallback_decision == 'hold'
    for bad in ('', '   ', 'x' * 101):
        with pytest.raises(SettingsError, match=r'\[serving\] fallback_decision from WILDPROOF_SERVING_FALLBACK_DECISION: expected a label'):
            load_settings(FILE, env={'WILDPROOF_SERVING_FALLBACK_DECISION': bad})


@pytest.mark.parametrize('section, name', sorted(RETIRED))
def test_a_retired_key_says_where_it_went(section, name, tmp_path):
    f = tmp_path / 'settings.ini'
    f.write_text(f'[store]\n[{section}]\n{name} = 1\n')
    where = {('dashboard', 'users_file'): r'\[access\] principals_file'}.get((section, name), 'model spec')
    with pytest.raises(SettingsError, match=rf'\[{section}\] {name} is no longer a setting: .*{where}'):
        load_settings(f, env={})
    assert (section, name) not in {(k.section, k.name) for k in SPEC}
