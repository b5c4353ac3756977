"""Review writes, by concern (every name below is the public surface; import this package):

- `tasks`: task_create, task_update;
- `queue`: queue_next (row locks, SKIP LOCKED, short leases), item_skip, lease_extend;
- `decisions`: item_decide, turn_edit, turn_decide, decision_undo, comment_add, flag_set, item_adjudicate;
- `bulk`: bulk_apply (one transaction, one audit row);
- `results`: task_snapshot, task_finish (a new immutable dataset version, built by the job "review.result":
  inline when small, else on a worker), result_build (the job's work), final_snapshot;
- `export`: decisions_export_lines, export_check;
- `preferences`: review_preference_export (edited assistant turns as preference pairs, a new dataset version),
  review_dpo_start (a DPO run on it), preference_pairs, last_preference_export.

Permissions are checked here (apps.review.permissions), never only in views: 403 PermissionDenied, 404
NotFound, 409 Conflict, 422 ValidationFailed with field errors."""
from apps.review.services.bulk import bulk_apply
from apps.review.services.decisions import (
    comment_add, decision_undo, flag_set, item_adjudicate, item_decide, settle, turn_decide, turn_edit,
)
from apps.review.services.edits import turn_diff, validate_messages
from apps.review.services.export import decisions_export_lines, export_check
from apps.review.services.preferences import (
    last_preference_export, preference_pairs, review_dpo_start, review_preference_export,
)
from apps.review.services.queue import item_skip, lease_extend, queue_next, reclaim_expired
from apps.review.services.results import final_snapshot, result_build, task_finish, task_snapshot
from apps.review.services.tasks import task_create, task_update

__all__ = [
    "bulk_apply", "comment_add", "decision_undo", "decisions_export_lines", "export_check", "final_snapshot",
    "flag_set", "item_adjudicate", "item_decide", "item_skip", "last_preference_export", "lease_extend",
    "preference_pairs", "queue_next", "reclaim_expired", "result_build", "review_dpo_start",
    "review_preference_export", "settle", "task_create", "task_finish", "task_snapshot", "task_update", "turn_decide",
    "turn_diff", "turn_edit", "validate_messages",
]
