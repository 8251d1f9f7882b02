"""Model and dataset cards rendered from Jinja templates in ``model_cards/`` and ``dataset_cards/``."""

from polyclinic.cards.render import TEMPLATE_ROOT, render_template

__all__ = ["TEMPLATE_ROOT", "render_template"]
