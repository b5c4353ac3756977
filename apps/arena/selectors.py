"""Reads of arenas, shared by /api/arenas, the pages and the websocket: lists, one arena, its voting progress,
the blind payload of a match and the reveal after a vote, the results (win rate per pair with Wilson
intervals, Bradley–Terry ranking with bootstrap intervals, the judge's agreement with the voters), the
per-prompt drill-down, and the arena a dataset version was exported from (model lineage).

Visibility (apps.arena.permissions): an arena is listed to whoever may view it; results and names only to
whoever may see results (its owner and admins; everyone in it once closed) — the callers check that with
`results_arena`."""
from __future__ import annotations

import itertools
from collections import Counter

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from apps.arena import permissions as perms
from apps.arena import stats
from apps.arena.models import (
    Arena, ArenaExport, ArenaItem, ArenaMatch, ArenaOutput, ArenaVote, ArenaVoter, Contestant, JudgeVote,
)
from apps.arena.services.calling import prompt_preview
from apps.arena.services.common import arena_for
from apps.core.exceptions import NotFound

BOOTSTRAP_ROUNDS = 200
OUTCOME_WORDS = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both bad"}


def arena_list(*, user) -> QuerySet[Arena]:
    qs = Arena.objects.select_related("owner", "job").order_by("-created_at", "-id")
    if perms.is_admin(user):
        return qs
    if not perms._signed_in(user):
        return qs.none()
    listed = ArenaVoter.objects.filter(arena=OuterRef("pk"))
    mine = ArenaVoter.objects.filter(arena=OuterRef("pk"), user_id=user.pk)
    return qs.filter(Q(owner_id=user.pk) | Exists(mine) | ~Exists(listed))


def arena_get(*, user, arena_id: int) -> Arena:
    return arena_for(user, arena_id, need="view")


def results_arena(*, user, arena_id: int) -> Arena:
    return arena_for(user, arena_id, need="results")


def contestants_of(arena: Arena) -> list[Contestant]:
    cached = arena.__dict__.get("_contestants")
    if cached is None:
        cached = list(arena.contestants.select_related("provider", "model_version").order_by("position"))
        arena.__dict__["_contestants"] = cached
    return cached


def job_state(job) -> dict | None:
    if job is None:
        return None
    progress = job.progress or {}
    total = progress.get("total")
    return {"id": job.pk, "kind": job.kind, "status": job.status, "phase": job.phase, "progress": progress,
            "percent": round(100.0 * float(progress.get("current") or 0) / float(total), 1)
            if isinstance(total, (int, float)) and total else None,
            "error": job.error, "active": job.is_active}


def arena_progress(*, arena: Arena) -> dict:
    matches = ArenaMatch.objects.filter(arena=arena).count()
    per_voter = dict(ArenaVote.objects.filter(arena=arena, status=ArenaVote.Status.DONE)
                     .values_list("voter__username").annotate(n=Count("id")).order_by("voter__username"))
    votes = sum(per_voter.values())
    listed = list(arena.voter_rows.order_by("user__username").values_list("user__username", flat=True))
    for name in listed:
        per_voter.setdefault(name, 0)
    return {"status": arena.status, "items": arena.items.count(), "matches": matches, "overlap": arena.overlap,
            "required": matches * arena.overlap, "votes": votes, "voters": listed, "per_voter": per_voter}


# -- one match: blind, then revealed ------------------------------------------------------------------------
def _texts(match: ArenaMatch) -> tuple[str, str]:
    rows = dict(ArenaOutput.objects.filter(item_id=match.item_id, contestant_id__in=(match.a_id, match.b_id))
                .values_list("contestant_id", "text"))
    a, b = rows.get(match.a_id, ""), rows.get(match.b_id, "")
    return (a, b) if match.left_is_a else (b, a)


def match_payload(vote: ArenaVote) -> dict:
    """What a voter sees: the prompt and two answers, left and right, with no name."""
    m = vote.match
    left, right = _texts(m)
    return {"match_id": m.pk, "item_id": m.item_id, "item_index": m.item.index, "prompt": m.item.messages,
            "left": {"text": left}, "right": {"text": right}, "status": vote.status,
            "lease_expires_at": vote.lease_expires_at.isoformat() if vote.lease_expires_at else None}


def reveal_payload(vote: ArenaVote) -> dict:
    """After the vote: who was left and right, and what the vote chose."""
    m = vote.match
    left, right = (m.a, m.b) if m.left_is_a else (m.b, m.a)
    chosen = {"left": left.label, "right": right.label}.get(vote.winner)
    return {"match_id": m.pk, "item_id": m.item_id, "winner": vote.winner, "outcome": vote.outcome,
            "comment": vote.comment, "chosen": chosen,
            "left": {"contestant_id": left.pk, "label": left.label},
            "right": {"contestant_id": right.pk, "label": right.label}}


def my_votes(*, arena: Arena, user) -> int:
    return ArenaVote.objects.filter(arena=arena, voter_id=user.pk, status=ArenaVote.Status.DONE).count()


# -- results --------------------------------------------------------------------------------------------------
def _pair_row(a: Contestant, b: Contestant, c: Counter) -> dict:
    decisive = c["a"] + c["b"]
    low, high = stats.wilson(c["a"], decisive)
    return {"a": a.label, "b": b.label, "a_id": a.pk, "b_id": b.pk, "wins_a": c["a"], "wins_b": c["b"],
            "ties": c["tie"], "both_bad": c["both_bad"], "votes": sum(c.values()),
            "win_rate_a": (c["a"] / decisive) if decisive else None, "ci_low": low, "ci_high": high}


def arena_results(*, arena: Arena, rounds: int = BOOTSTRAP_ROUNDS) -> dict:
    people = contestants_of(arena)
    index = {c.pk: i for i, c in enumerate(people)}
    done = list(ArenaVote.objects.filter(arena=arena, status=ArenaVote.Status.DONE)
                .values_list("match__a_id", "match__b_id", "outcome", "voter_id"))
    per_pair: dict[tuple[int, int], Counter] = {}
    games, record = [], {c.pk: Counter() for c in people}
    for a, b, outcome, _voter in done:
        per_pair.setdefault((a, b), Counter())[outcome] += 1
        result = {"a": 1.0, "b": 0.0}.get(outcome, 0.5)  # "tie" and "both bad": neither preferred
        games.append((index[a], index[b], result))
        record[a]["wins" if result == 1.0 else "losses" if result == 0.0 else "ties"] += 1
        record[b]["losses" if result == 1.0 else "wins" if result == 0.0 else "ties"] += 1
    pairs = [_pair_row(a, b, per_pair.get((a.pk, b.pk), Counter())) for a, b in itertools.combinations(people, 2)]
    scores = stats.bradley_terry(len(people), games) if games else [None] * len(people)
    intervals = (stats.bootstrap_bt(len(people), games, rounds=rounds, seed=arena.pk) if games
                 else [(None, None)] * len(people))
    ranking = []
    for c, score, (low, high) in zip(people, scores, intervals):
        r = record[c.pk]
        ranking.append({"contestant": c.label, "contestant_id": c.pk, "model": c.model, "kind": c.kind,
                        "model_version_id": c.model_version_id, "score": score, "ci_low": low, "ci_high": high,
                        "wins": r["wins"], "losses": r["losses"], "ties": r["ties"],
                        "votes": r["wins"] + r["losses"] + r["ties"]})
    ranking.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0.0), r["contestant_id"]))
    for i, r in enumerate(ranking):
        r["rank"] = i + 1 if r["score"] is not None else None
    return {"pairs": pairs, "ranking": ranking, "votes": len(done), "voters": len({v for *_, v in done}),
            "matches": ArenaMatch.objects.filter(arena=arena).count(), "judge": judge_agreement(arena=arena)}


def judge_agreement(*, arena: Arena) -> dict | None:
    """The judge's verdicts against the human votes on the same matches: per vote, the share where both chose
    the same (a, b, tie or both bad) and Cohen's κ."""
    if not arena.judge_model and not JudgeVote.objects.filter(arena=arena).exists():
        return None
    verdicts = dict(JudgeVote.objects.filter(arena=arena).exclude(outcome="").values_list("match_id", "outcome"))
    counts = JudgeVote.objects.filter(arena=arena).aggregate(
        total=Count("id"), errors=Count("id", filter=~Q(error="")),
        unreadable=Count("id", filter=Q(outcome="", error="")))
    pairs = [(outcome, verdicts[m]) for m, outcome in ArenaVote.objects.filter(
        arena=arena, status=ArenaVote.Status.DONE, match_id__in=list(verdicts)).values_list("match_id", "outcome")]
    same = sum(1 for h, j in pairs if h == j)
    return {"model": arena.judge_model, "verdicts": len(verdicts), "total": counts["total"], "errors": counts["errors"],
            "unreadable": counts["unreadable"], "compared": len(pairs),
            "agreement": same / len(pairs) if pairs else None, "kappa": stats.cohen_kappa(pairs)}


# -- drill-down ---------------------------------------------------------------------------------------------------
def item_rows(*, arena: Arena) -> QuerySet[ArenaItem]:
    """Items with their vote counts (the per-prompt table; paginate it)."""
    done = Count("matches__votes", filter=Q(matches__votes__status=ArenaVote.Status.DONE))
    return ArenaItem.objects.filter(arena=arena).annotate(votes=done).order_by("index")


def item_summaries(*, arena: Arena, items: list[ArenaItem]) -> list[dict]:
    """For a page of items: the prompt's preview and, per pair, the votes' outcomes and the judge's."""
    people = {c.pk: c for c in contestants_of(arena)}
    ids = [i.pk for i in items]
    outcomes: dict[int, Counter] = {}
    for match_id, outcome in ArenaVote.objects.filter(match__item_id__in=ids, status=ArenaVote.Status.DONE) \
            .values_list("match_id", "outcome"):
        outcomes.setdefault(match_id, Counter())[outcome] += 1
    judge = dict(JudgeVote.objects.filter(match__item_id__in=ids).values_list("match_id", "outcome"))
    by_item: dict[int, list] = {}
    for m in ArenaMatch.objects.filter(item_id__in=ids).order_by("a__position", "b__position"):
        c = outcomes.get(m.pk, Counter())
        by_item.setdefault(m.item_id, []).append({
            "a": people[m.a_id].label, "b": people[m.b_id].label, "wins_a": c["a"], "wins_b": c["b"],
            "ties": c["tie"] + c["both_bad"], "votes": sum(c.values()),
            "judge": OUTCOME_WORDS.get(judge.get(m.pk) or "", "") if m.pk in judge else None})
    return [{"item": i, "preview": prompt_preview(i.messages), "pairs": by_item.get(i.pk, []),
             "votes": getattr(i, "votes", None)} for i in items]


def item_detail(*, arena: Arena, item_id: int) -> dict:
    item = ArenaItem.objects.filter(arena=arena, pk=item_id).first()
    if item is None:
        raise NotFound("No such item in this arena.")
    people = contestants_of(arena)
    outs = {o.contestant_id: o for o in ArenaOutput.objects.filter(item=item)}
    outputs = []
    for c in people:
        o = outs.get(c.pk)
        outputs.append({"contestant": c.label, "contestant_id": c.pk, "text": o.text if o else None,
                        "error": o.error if o else "", "served_by": o.served_by if o else "",
                        "latency_ms": o.latency_ms if o else None})
    labels = {c.pk: c.label for c in people}
    matches = []
    for m in ArenaMatch.objects.filter(item=item).select_related("judge_vote").order_by("a__position", "b__position"):
        left, right = (m.a_id, m.b_id) if m.left_is_a else (m.b_id, m.a_id)
        votes = [{"voter": v.voter.username, "winner": v.winner, "chosen": _chosen(v.outcome, m, labels),
                  "comment": v.comment, "voted_at": v.voted_at.isoformat() if v.voted_at else None}
                 for v in m.votes.filter(status=ArenaVote.Status.DONE).select_related("voter").order_by("voted_at")]
        jv = getattr(m, "judge_vote", None)
        matches.append({"match_id": m.pk, "a": labels[m.a_id], "b": labels[m.b_id], "left": labels[left],
                        "right": labels[right], "votes": votes,
                        "judge": {"chosen": _chosen(jv.outcome, m, labels), "winner": jv.winner, "reply": jv.reply,
                                  "error": jv.error} if jv is not None else None})
    return {"item_id": item.pk, "index": item.index, "prompt": item.messages, "example_index": item.example_index,
            "outputs": outputs, "matches": matches}


def _chosen(outcome: str, m: ArenaMatch, labels: dict) -> str:
    return {"a": labels[m.a_id], "b": labels[m.b_id], "tie": "tie", "both_bad": "both bad"}.get(outcome, "no verdict")


def contestant_stats(*, arena: Arena) -> list[dict]:
    """Per contestant: answers, failed calls (with the first error), mean latency and tokens."""
    rows = []
    for c in contestants_of(arena):
        qs = ArenaOutput.objects.filter(contestant=c)
        ok = qs.filter(error="")
        agg = ok.aggregate(n=Count("id"))
        lat = [v for v in ok.values_list("latency_ms", flat=True) if v is not None]
        toks = [v for v in ok.values_list("completion_tokens", flat=True) if v is not None]
        errors = qs.exclude(error="")
        rows.append({"contestant": c, "answers": agg["n"], "failed": errors.count(),
                     "first_error": errors.values_list("error", flat=True).first() or "",
                     "mean_latency_ms": sum(lat) / len(lat) if lat else None,
                     "mean_tokens": sum(toks) / len(toks) if toks else None})
    return rows


def exports_of(*, arena: Arena) -> list[ArenaExport]:
    return list(arena.exports.select_related("version", "version__dataset", "created_by")[:20])


def arena_for_dataset_version(version_id: int | None) -> Arena | None:
    """The arena whose votes a dataset version was exported from (None: not an arena export)."""
    if not version_id:
        return None
    export = ArenaExport.objects.select_related("arena").filter(version_id=version_id).first()
    return export.arena if export is not None else None
