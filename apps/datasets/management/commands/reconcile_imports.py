"""Re-queue (or fail) dataset imports left `importing` by a worker that died.

A worker does this itself when it boots; run this when no worker restarts (e.g. from cron). Same
host: an import whose worker pid is gone; another host: one without a heartbeat for --stale-after s.
"""
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Re-queue imports whose worker died (raw upload still on disk) or mark them failed."

    def add_arguments(self, parser):
        parser.add_argument("--stale-after", dest="stale_after", type=float, default=None,
                            help="Seconds without a heartbeat after which a worker on another host is taken "
                                 "for dead (default 120)")

    def handle(self, *args, stale_after, **opts):
        from apps.datasets.services import version_reconcile_imports

        actions = version_reconcile_imports(stale_after_s=stale_after)
        for version_id, action in actions:
            self.stdout.write(f"dataset version {version_id}: {action}")
        self.stdout.write(f"{len(actions)} interrupted import(s) handled.")
