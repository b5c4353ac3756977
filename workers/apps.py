from django.apps import AppConfig


class WorkersConfig(AppConfig):
    """Makes `workers/tasks.py` discoverable by django_dramatiq's `rundramatiq`."""

    name = "workers"
