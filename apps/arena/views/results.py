"""The results page (win rate per pair with its Wilson interval, the Bradley–Terry ranking with bootstrap
intervals, both as server-drawn SVG replaced by plotly when it loads, the judge's agreement with the voters,
and the per-prompt table) and one prompt's drill-down (every answer with its contestant's name, every vote
with its comment, the judge's verdict). For the arena's owner and admins; for everyone in it once closed."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from apps.arena import charts, selectors

PER_PAGE = 25


@login_required
def results_view(request, arena_id: int):
    arena = selectors.results_arena(user=request.user, arena_id=arena_id)
    results = selectors.arena_results(arena=arena)
    contestants = selectors.contestants_of(arena)
    page = Paginator(selectors.item_rows(arena=arena), PER_PAGE).get_page(request.GET.get("page"))
    decided = [r for r in results["pairs"] if r["votes"]]
    ranked = [r for r in results["ranking"] if r["score"] is not None]
    ctx = {"arena": arena, "results": results, "contestants": contestants, "page": page,
           "items": selectors.item_summaries(arena=arena, items=list(page.object_list)),
           "show_ranking": len(contestants) > 2,
           "pair_svg": charts.interval_chart(charts.pair_rows(decided), reference=0.5, percent=True, lo=0.0, hi=1.0,
                                             x_title="win rate of the first-named model (Wilson 95 % interval)")
           if decided else "",
           "rank_svg": charts.interval_chart(charts.rank_rows(ranked), reference=1000.0, color="#7a5af8",
                                             x_title="Bradley–Terry score, Elo scale (bootstrap 95 % interval)")
           if ranked and len(contestants) > 2 else "",
           "chart": {"pairs": charts.pair_rows(decided), "ranking": charts.rank_rows(ranked)}}
    return render(request, "arena/results.html", ctx)


@login_required
def item_view(request, arena_id: int, item_id: int):
    arena = selectors.results_arena(user=request.user, arena_id=arena_id)
    detail = selectors.item_detail(arena=arena, item_id=item_id)
    return render(request, "arena/item.html", {"arena": arena, "d": detail})
