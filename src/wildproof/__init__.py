"""A notebook-native workbench that carries a tabular model from JupyterLab to production and keeps it honest there

Modules:

- `wildproof.cli`: The `wildproof` command line."""

__version__ = "0.1.0"
