"""The model card and inventory dashboard, served by `wildproof dashboards` (or `panel serve apps/model_card.py`)."""
from wildproof.dashboards import ModelCardDashboard

ModelCardDashboard().panel().servable(title='wildproof: models')
