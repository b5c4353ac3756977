from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "apps.proxy"
    label = "proxy"

    def ready(self):
        from apps.proxy import limits

        limits.connect_signals()  # a new alias reaches the per-key name checks
