from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self):
        # every app's `jobs.py` registers its job kinds (apps.core.jobs.registry)
        from apps.core.jobs.registry import autodiscover

        autodiscover()
