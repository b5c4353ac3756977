"""Import the bundled demo dataset once, owned by `admin` (or the first superuser). Idempotent."""
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.datasets.models import Dataset

DEMO_NAME = "Demo: programming & D&D chat"
DEMO_FILE = Path(__file__).resolve().parents[2] / "demo" / "demo.jsonl"


class Command(BaseCommand):
    help = f"Load the demo dataset ({DEMO_NAME!r}) unless it already exists."

    def handle(self, *args, **opts):
        from apps.datasets.services import dataset_import

        existing = Dataset.objects.filter(name=DEMO_NAME).first()
        if existing is not None:
            self.stdout.write(f"Demo dataset already present (dataset {existing.pk}); nothing to do.")
            return
        User = get_user_model()
        owner = (User.objects.filter(username="admin").first()
                 or User.objects.filter(is_superuser=True).order_by("pk").first())
        if owner is not None:  # the hub's own checkout as a sample code source (issue 10), analysed now
            from apps.core.cli_progress import job_progress
            from apps.sources.services import demo_source_prepare

            with job_progress(getattr(self.stderr, "_out", None)):  # the analysis's phases and counts
                src, problem = demo_source_prepare(user=owner)
            self.stdout.write(f"Sample code source: {src.name} (source {src.pk})" if src and not problem else
                              f"No sample code source: {problem}")
        if owner is None:
            raise CommandError("No `admin` user and no superuser exists: create the admin first "
                               "(`make run` does, or `python manage.py createsuperuser`).")
        version = dataset_import(user=owner, name=DEMO_NAME, file=DEMO_FILE, filename="demo.jsonl")
        if version.status != "ready":
            raise CommandError(f"The demo data failed to import: {version.error}")
        self.stdout.write(self.style.SUCCESS(
            f"Loaded {DEMO_NAME!r}: dataset {version.dataset_id}, version {version.pk}, "
            f"{version.example_count} examples."))
