"""A notebook-native workbench that carries a tabular model from JupyterLab to production and keeps it honest there

Modules:

- `wildproof.cli`: The `wildproof` command line.
- `wildproof.dashboard_auth`: The dashboards' login, loaded by `panel serve --auth-module` (see `wildproof dashboards`): any person of the principals file, by their password.
- `wildproof.dashboards`: Dashboards: Panel components (a read-only data store plus views) for stakeholders, served by `wildproof dashboards`.
- `wildproof.engine`: Where the heavy statistics run: DuckDB in this process (the default) or Apache Spark (`[engine] kind = spark`).
- `wildproof.logins`: Passwords as wildproof keeps them: scrypt hashes, never the passwords; and the dashboards' users file of before issue 21.
- `wildproof.principals`: Who may do what: people with roles and service clients with scopes, in one JSON file, `[access] principals_file`.
- `wildproof.reports`: Reports: parameterized notebook templates, run by papermill into versioned, immutable folders, indexed in the store.
- `wildproof.schedule`: The schedule: report jobs declared in settings.ini ([schedule]), run by `wildproof schedule run` (from cron) or `schedule serve`."""

__version__ = "0.1.0"

# The notebook API a data scientist starts from, imported on first use (importing wildproof stays cheap)
_API = {'register_model': 'training', 'train': 'training', 'model_version': 'training', 'ingest': 'datasets', 'infer_contract': 'contracts',
        'init_spec': 'spec', 'get_spec': 'spec', 'Store': 'store'}

def __getattr__(name):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(f'wildproof.{_API[name]}'), name)
    raise AttributeError(f'module wildproof has no attribute {name!r}')
