# The Celery application is loaded with Django, so that tasks sent from web processes and
# management commands use its settings (broker, or inline without one).
from config.celery import app as celery_app

__all__ = ["celery_app"]
