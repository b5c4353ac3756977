"""Dashboard pages of blind arenas (mounted at /arenas/), by concern: `pages` (list, new arena, an arena's
page with its live progress and its owner's actions), `vote` (the blind voting screen and its htmx actions;
keys in static/js/arena_vote.js), `results` (win rates, ranking, plots, judge agreement, per-prompt
drill-down). Parse input, call apps.arena.selectors or services, render; no ORM writes here. Permissions are
checked by the services and selectors (a refused page is the 403/404 status page)."""
from apps.arena.views.pages import (  # noqa: F401
    arena_detail_view, arena_list_view, arena_new_view, cancel_view, close_view, dpo_view, export_view, judge_view,
)
from apps.arena.views.results import item_view, results_view  # noqa: F401
from apps.arena.views.vote import skip_view, vote_action_view, vote_view  # noqa: F401
