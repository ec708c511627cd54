"""The model card and inventory dashboard, served by `wildproof dashboards` (or `panel serve apps/model_card.py`).
A person the login checked who holds an approving role may approve the version shown; everyone else only reads."""
from wildproof.dashboards import ModelCardDashboard, session_user

ModelCardDashboard(user=session_user()).panel().servable(title='wildproof: models')
