from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"

    def ready(self):
        from apps.registry import services

        services.connect_signals()  # cached /v1 routes are forgotten when an alias or version changes
