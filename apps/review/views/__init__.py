"""Dashboard pages of team review (issue 9), by concern: `screen` (the review screen and its htmx actions),
`pages` (task list, new task, task page, agreement, adjudication, bulk actions, result), `render` (examples
as conversations, diffs, kappa colours), `common`. Parse input, call apps.review.selectors or services,
render; no ORM writes here. Every permission is checked by the services and selectors (a refused page is the
403/404 status page of apps.core.error_pages; a refused htmx action is shown inline).

Pages: the task list and the new-task form; a task's page (live progress over /ws/reviews/<id>/, result
versions, Finish / Snapshot, export); the review screen (one example at a time, keyboard first:
static/js/review.js); agreement (kappa heatmap, alpha, per-reviewer plots: static/js/review_agreement.js);
the adjudication queue and an item's answers side by side; bulk actions with a count preview.

The review screen's fragments are named partials of templates/review/review.html: `item` (the example, the
questions and the decision bar: swapped after each decision, skip, undo or history step), `turn` (one turn:
swapped after a turn decision or an inline edit), `preview` (the live diff of an edit in progress),
`thread` and `flags`. htmx swaps 409/422 answers too (review.js), so a refused edit shows its message in
place."""
from apps.review.views.pages import (  # noqa: F401
    adjudicate_view, adjudication_list_view, agreement_view, bulk_view, dpo_view, export_view, finish_view,
    preference_export_view, snapshot_view, task_detail_view, task_list_view, task_new_view,
)
from apps.review.views.render import conversation, kappa_class, kappa_matrix, message_from_post  # noqa: F401
from apps.review.views.screen import (  # noqa: F401
    comment_view, decide_view, flag_view, lease_view, review_view, skip_view, turn_preview_view, turn_view, undo_view,
)
