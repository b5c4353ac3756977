"""Resume or fail runs left `running` by a worker that died (also done automatically at worker boot)."""
from django.core.management.base import BaseCommand

from apps.training.services import run_reconcile


class Command(BaseCommand):
    help = "Runs left running by a dead worker: resume those with a checkpoint, fail the others."

    def add_arguments(self, parser):
        parser.add_argument("--stale-after", type=int, default=None,
                            help="seconds without a heartbeat before a run on another machine counts as dead")

    def handle(self, *args, stale_after=None, **opts):
        actions = run_reconcile(stale_after_s=stale_after)
        for run_id, action in actions:
            self.stdout.write(f"run {run_id}: {action}")
        if not actions:
            self.stdout.write("nothing to do")
