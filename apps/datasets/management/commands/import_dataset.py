"""Import a file, folder or zip as a dataset version; prints the new version's id.

On a terminal a progress bar follows the import job (rows read and validated of the file's lines; updated at
most every PROGRESS_EVERY_S, from the pipeline's per-batch callback); elsewhere one line per phase; nothing
with -v 0 (apps/core/cli_progress.py, as generate_scenarios and load_demo_data)."""
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.core.exceptions import ApplicationError
from apps.datasets.formats import FORMATS, TARGETS


class Command(BaseCommand):
    help = "Import PATH (file, folder or zip) with the same parsing and validation as uploads; prints the version id."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--name", help="Dataset name (required unless --dataset is given)")
        parser.add_argument("--dataset", type=int, help="Add a new version to this dataset id")
        parser.add_argument("--user", help="Owner username (default: admin, else the first superuser)")
        parser.add_argument("--format", choices=sorted(FORMATS))
        parser.add_argument("--target", choices=TARGETS, default="local")
        parser.add_argument("--base-model", dest="base_model")

    def handle(self, *args, path, name, dataset, user, format, target, base_model, **opts):
        from apps.datasets.services import dataset_import

        User = get_user_model()
        if user:
            owner = User.objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user named {user!r}.")
        else:
            owner = (User.objects.filter(username="admin").first()
                     or User.objects.filter(is_superuser=True).order_by("pk").first())
            if owner is None:
                raise CommandError("No `admin` user or superuser exists; pass --user.")
        from apps.core.cli_progress import job_progress

        quiet = opts.get("verbosity", 1) == 0
        try:
            with job_progress(getattr(self.stderr, "_out", sys.stderr), enabled=not quiet):
                version = dataset_import(user=owner, name=name or "", file=path, format=format, dataset=dataset,
                                         target=target, base_model=base_model)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        val = version.validation or {}
        if not quiet:
            self.stderr.write(f"dataset {version.dataset_id} version {version.number}: {version.status}, "
                              f"{version.example_count} examples, {val.get('error_total', 0)} errors, "
                              f"{val.get('warning_total', 0)} warnings" +
                              (f" — {version.error}" if version.error else ""))
        self.stdout.write(str(version.pk))
        if version.status == "failed":
            raise CommandError(version.error or "import failed")
