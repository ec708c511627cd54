"""A notebook-native workbench that carries a tabular model from JupyterLab to production and keeps it honest there

Modules:

- `wildproof.cli`: The `wildproof` command line.
- `wildproof.reports`: Reports: parameterized notebook templates, run by papermill into versioned, immutable folders, indexed in the store."""

__version__ = "0.1.0"
