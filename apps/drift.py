"""The drift dashboard, served by `wildproof dashboards` (or `panel serve apps/drift.py`); the store is `[store] root` of the settings."""
from wildproof.dashboards import DriftDashboard

DriftDashboard().panel().servable(title='wildproof: drift')
