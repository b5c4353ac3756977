"""The seed's default alert rules: error rate above 5 %, latency (p95) above 1000 ms, and CPU, memory and GPU
memory use above 80 %, each over 5 minutes, for every alias (traffic) or every host (resources)."""
from django.db import migrations

DEFAULTS = [
    ("Error rate above 5 %", "error_rate", 5.0),
    ("Latency p95 above 1000 ms", "latency_p95", 1000.0),
    ("CPU above 80 %", "cpu", 80.0),
    ("Memory above 80 %", "memory", 80.0),
    ("GPU memory above 80 %", "gpu_memory", 80.0),
]


def add_defaults(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    for name, metric, threshold in DEFAULTS:
        if not AlertRule.objects.filter(is_default=True, metric=metric).exists():
            AlertRule.objects.create(name=name, metric=metric, threshold=threshold, window_minutes=5,
                                     min_requests=10, is_default=True)


def remove_defaults(apps, schema_editor):
    apps.get_model("monitoring", "AlertRule").objects.filter(is_default=True).delete()


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_initial")]
    operations = [migrations.RunPython(add_defaults, remove_defaults)]
