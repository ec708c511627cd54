"""A notebook-native workbench that carries a tabular model from JupyterLab to production and keeps it honest there

Modules:

- `wildproof.cli`: The `wildproof` command line.
- `wildproof.dashboards`: Dashboards: Panel components (a read-only data store plus views) for stakeholders, served by `wildproof dashboards`.
- `wildproof.logins`: The dashboards' users: a JSON object of user names and scrypt hashes of their passwords, never the passwords.
- `wildproof.principals`: Who may do what: the people (a scrypt hash of their password, their roles, optionally an SSH public key for signed approvals) and the service clients (the SHA-256 of their bearer token, their scopes), in one JSON file, `[access] principals_file`, written whole and readable by its owner only.
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
