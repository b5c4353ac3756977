"""Votes become training data: the arena's human preferences as a preference dataset version, and a DPO run
on it.

Contract:
- `preference_rows(arena)`: one row per match whose done votes have a strict plurality for one side (a
  single vote is enough; a tie for first place, a "tie" or "both bad" plurality give none), in the hub's
  preference row format (apps/datasets/formats/rows.py `_check_preference`): {"input": {"messages":
  prompt}, "preferred_output": [{"role": "assistant", "content": winner's answer}], "non_preferred_output":
  [{"role": "assistant", "content": loser's answer}]}; the judge's verdicts are never used.
- `arena_export(user=, arena_id=, name=)` (owner or admin; 422 `votes` when no row comes out) writes them to
  a JSONL file and imports it through apps.datasets.services.imports.dataset_import, as a new version of the
  dataset of the arena's previous export when the user may write to it (else a new dataset); records an
  `ArenaExport` and the arena's `export_version`.
- `arena_dpo_start(user=, arena_id=, ...)` (owner or admin) starts
  apps.training.services.runs.run_create(method="dpo") on the last export, continuing the winner's model
  version (the best-ranked contestant that is one) unless told otherwise; run_create's field errors come back
  unchanged (422). The run is recorded as the arena's `dpo_run`.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from apps.arena.models import Arena, ArenaExport, ArenaMatch, ArenaOutput, ArenaVote
from apps.arena.services.common import arena_for
from apps.arena.stats import plurality
from apps.core.exceptions import ValidationFailed


def preference_rows(arena: Arena) -> tuple[list[dict], dict]:
    """(rows, counts {voted, exported, undecided})."""
    counts: dict[int, dict[str, int]] = {}
    for match_id, outcome in ArenaVote.objects.filter(arena=arena, status=ArenaVote.Status.DONE).values_list(
            "match_id", "outcome"):
        counts.setdefault(match_id, {}).setdefault(outcome, 0)
        counts[match_id][outcome] += 1
    texts = {(o.item_id, o.contestant_id): o.text
             for o in ArenaOutput.objects.filter(item__arena=arena, error="").only("item_id", "contestant_id", "text")}
    rows = []
    matches = (ArenaMatch.objects.filter(pk__in=list(counts)).select_related("item")
               .order_by("item__index", "a__position", "b__position"))
    for m in matches:
        side = plurality(counts[m.pk])
        if side not in ("a", "b"):
            continue
        win, lose = (m.a_id, m.b_id) if side == "a" else (m.b_id, m.a_id)
        chosen, rejected = texts.get((m.item_id, win), ""), texts.get((m.item_id, lose), "")
        if not chosen.strip():
            continue
        rows.append({"input": {"messages": m.item.messages},
                     "preferred_output": [{"role": "assistant", "content": chosen}],
                     "non_preferred_output": [{"role": "assistant", "content": rejected}]})
    return rows, {"voted": len(counts), "exported": len(rows), "undecided": len(counts) - len(rows)}


def arena_export(*, user, arena_id: int, name: str = "") -> ArenaExport:
    from apps.datasets.models import DatasetVersion
    from apps.datasets.services.imports import dataset_import

    arena = arena_for(user, arena_id, need="manage")
    name = (name or "").strip() if isinstance(name, str) else ""
    if len(name) > 200 or "\x00" in name:
        raise ValidationFailed("A name is at most 200 characters.", field="name")
    rows, counts = preference_rows(arena)
    if not rows:
        raise ValidationFailed("No pair has a human preference yet (a left or right vote that carries its pair): "
                               "there is nothing to export.", field="votes")
    dataset = None
    last = arena.export_version
    if last is not None and (last.dataset.owner_id == user.pk or getattr(user, "is_hub_admin", False)):
        dataset = last.dataset
    with tempfile.TemporaryDirectory(prefix="arena-export-") as tmp:
        path = Path(tmp) / f"arena-{arena.pk}-preferences.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        version = dataset_import(user=user, name=name or f"{arena.name} · preferences"[:200], file=str(path),
                                 dataset=dataset, target="local", background=False,
                                 note=f"Preference pairs from arena {arena.pk} ({arena.name})"[:500])
    if version.status != DatasetVersion.Status.READY:
        raise ValidationFailed(f"The preference dataset did not import: {version.error or version.status}.",
                               field="votes")
    export = ArenaExport.objects.create(arena=arena, version=version, pairs=counts["exported"], created_by=user)
    Arena.objects.filter(pk=arena.pk).update(export_version=version)
    export.counts = counts
    return export


def winner_version_id(arena: Arena) -> int | None:
    """The model version of the best-ranked contestant that has one (None: none has, or no votes yet)."""
    from apps.arena import selectors

    for row in selectors.arena_results(arena=arena)["ranking"]:
        if row.get("model_version_id"):
            return row["model_version_id"]
    return None


def arena_dpo_start(*, user, arena_id: int, base_model: str | None = None, parent_version_id: int | None = None,
                    from_winner: bool = True, hyperparameters: dict | None = None, name: str = "",
                    backend: str = "local"):
    from apps.training.services.runs import run_create

    arena = arena_for(user, arena_id, need="manage")
    if arena.export_version_id is None:
        raise ValidationFailed("Export the votes as a preference dataset first.", field="dataset_version_id")
    parent = parent_version_id or (winner_version_id(arena) if from_winner else None)
    run = run_create(user=user, dataset_version_id=arena.export_version_id, method="dpo", parent_version_id=parent,
                     base_model=base_model or None, hyperparameters=dict(hyperparameters or {}), backend=backend,
                     name=(name or f"DPO · arena {arena.name}")[:200])
    Arena.objects.filter(pk=arena.pk).update(dpo_run=run)
    return run
