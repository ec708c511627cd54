"""A notebook-native workbench that carries a tabular model from JupyterLab to production and keeps it honest there

Modules:

- `wildproof.cli`: The `wildproof` command line.
- `wildproof.dashboards`: Dashboards: Panel components (a read-only data store plus views) for stakeholders, served by `wildproof dashboards`.
- `wildproof.logins`: The dashboards' users: a JSON object of user names and scrypt hashes of their passwords, never the passwords.
- `wildproof.reports`: Reports: parameterized notebook templates, run by papermill into versioned, immutable folders, indexed in the store.
- `wildproof.schedule`: The schedule: report jobs declared in settings.ini ([schedule]), run by `wildproof schedule run` (from cron) or `schedule serve`."""

__version__ = "0.1.0"
