"""Review edits become training data: every assistant turn a review corrected, as a preference pair (the
reviewed text chosen, the original rejected), a new preference dataset version, and a DPO run on it — the
review counterpart of apps.arena.services.export.

Contract:
- `preference_pairs(task)`: one pair per edited assistant turn of the task's *accepted* items, following the
  review app's own rule for an example's final version (the one `task_finish` writes): the item's final
  decision is accept (every reviewer agreed, or an adjudicator / a bulk action decided it), and its content is
  the item's current messages — several reviewers' edits of one turn resolve to the last one saved (a
  conflicting edit is refused with 409 `edit_conflict` unless it replaced the other knowingly). A turn the
  final decision rejects (the adjudicator's turn decision, else any accepting reviewer's, as in the reviewed
  version where it gets weight 0) gives no pair. Left out too: items with no final accept (pending, disputed
  or rejected), edits that only change whitespace, turns with a tool call on either side (a preference row
  holds text answers), an assistant turn with nothing before it. A turn counts as edited when it has TurnEdit
  rows and differs from the original (an undo that restored it makes no pair). Edits of system / user / tool
  turns make no pair, but the edited context is what the pair's `input` holds.
  Each row is a Together / OpenAI preference row (apps/datasets/formats/rows.py `_check_preference`):
  {"input": {"messages": final turns before the edited one}, "preferred_output": [the reviewed turn],
  "non_preferred_output": [the original turn]}; its provenance goes into the example's meta as
  meta["review"] = {task, item, example, example_index, turn, reviewer (whose edit is the final text),
  editors (everyone who edited the turn, in order), decision, state}.
- `review_preference_export(user=, task_id=, name=)` (the task's owner or an admin: 403 for anyone else, 404
  for no such task; 422 `edits` "No edited assistant turn to build pairs from" when no pair comes out) writes the rows
  as JSONL and imports them through apps.datasets.services.imports.dataset_import — a new version of the
  dataset of the task's previous export when the user may write to it, else a new dataset — then records the
  provenance on the new version's examples (matched by their line in the file) in the same call. meta is not
  part of an example's content hash. Returns a `PreferenceExport` (version, pairs, counts).
- `last_preference_export(task)`: the newest ready version made by that export (its file is named
  `review-<task>-preferences.jsonl` and its examples carry meta["review"]["task"] = the task), or None.
- `review_dpo_start(user=, task_id=, ...)` (owner or admin) starts
  apps.training.services.runs.run_create(method="dpo") on the given export (`dataset_version_id`, one of this
  task's exports) or the last one, from the given base model or model version (default: the task's dataset
  version's base model, else run_create's default); run_create's field errors come back unchanged (422).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from apps.core.exceptions import ValidationFailed
from apps.review.models import ReviewItem, ReviewTask, TurnEdit
from apps.review.services.common import task_for

NO_PAIRS = "No edited assistant turn to build pairs from"
PAGE = 500
COUNT_KEYS = ("pairs", "whitespace_only", "not_accepted", "rejected_turn", "tool_calls", "no_context")


def _file_name(task_id: int) -> str:
    return f"review-{task_id}-preferences.jsonl"


def _squash(text: str) -> str:
    return " ".join(text.split())


def _plain(message: dict) -> dict:
    """A context turn as a preference row's input holds it (no per-turn weight)."""
    return {k: v for k, v in message.items() if k != "weight"}


def _text_turn(message) -> str | None:
    """The text of an assistant turn that can be one side of a pair, or None (a tool call, no text)."""
    if not isinstance(message, dict) or message.get("tool_calls") or message.get("function_call"):
        return None
    content = message.get("content")
    return content if isinstance(content, str) else None


@dataclass
class PreferenceExport:
    version: object
    pairs: int
    counts: dict = field(default_factory=dict)


def _edit_authors(item_ids: list[int]) -> dict[tuple[int, int], list[str]]:
    """(item, turn) -> usernames of the turn's editors in the order of their edits (the last: the final text)."""
    out: dict[tuple[int, int], list[str]] = {}
    for item_id, turn, name in (TurnEdit.objects.filter(item_id__in=item_ids).order_by("item_id", "revision")
                                .values_list("item_id", "turn_index", "author__username")):
        out.setdefault((item_id, turn), []).append(name or "")
    return out


def preference_pairs(task: ReviewTask) -> tuple[list[dict], list[dict], dict]:
    """(rows, provenance per row, counts {pairs, whitespace_only, not_accepted, rejected_turn, tool_calls,
    no_context}); see the module docstring for the rule."""
    from apps.review.services.results import _rejected_turns

    counts = dict.fromkeys(COUNT_KEYS, 0)
    rows: list[dict] = []
    provenance: list[dict] = []
    qs = (ReviewItem.objects.filter(task_id=task.pk, messages__isnull=False).order_by("example_index")
          .values("pk", "example_id", "example_index", "messages", "final_decision", "state", "turn_decisions",
                  "example__messages"))
    last = -1
    while True:
        page = list(qs.filter(example_index__gt=last)[:PAGE])
        if not page:
            break
        last = page[-1]["example_index"]
        rejected = _rejected_turns(task, [r for r in page if r["final_decision"] == "accept"], True)
        authors = _edit_authors([r["pk"] for r in page])
        for row in page:
            final, original = row["messages"], row["example__messages"] or []
            for i, turn in enumerate(final):
                before = original[i] if i < len(original) else None
                if (row["pk"], i) not in authors or not isinstance(turn, dict) or turn.get("role") != "assistant" \
                        or before == turn:  # never edited, or edited back to the original (an undo)
                    continue
                chosen, worse = _text_turn(turn), _text_turn(before)
                if chosen is not None and worse is not None and _squash(chosen) == _squash(worse):
                    counts["whitespace_only"] += 1
                    continue
                if row["final_decision"] != "accept":
                    counts["not_accepted"] += 1
                elif i in rejected.get(row["pk"], set()):
                    counts["rejected_turn"] += 1
                elif chosen is None or worse is None or not chosen.strip() or not worse.strip():
                    counts["tool_calls"] += 1
                elif i == 0:
                    counts["no_context"] += 1
                else:
                    rows.append({"input": {"messages": [_plain(m) for m in final[:i]]},
                                 "preferred_output": [{"role": "assistant", "content": chosen}],
                                 "non_preferred_output": [{"role": "assistant", "content": worse}]})
                    editors = authors.get((row["pk"], i), [])
                    provenance.append({
                        "task": task.pk, "item": row["pk"], "example": row["example_id"],
                        "example_index": row["example_index"], "turn": i,
                        "reviewer": editors[-1] if editors else None, "editors": list(dict.fromkeys(editors)),
                        "decision": row["final_decision"], "state": row["state"]})
    counts["pairs"] = len(rows)
    return rows, provenance, counts


def last_preference_export(task: ReviewTask):
    """The newest ready version this task's preference export made, or None."""
    from apps.datasets.models import DatasetVersion, Example

    candidates = (DatasetVersion.objects.filter(source_name=_file_name(task.pk), status=DatasetVersion.Status.READY)
                  .select_related("dataset").order_by("-created_at", "-pk"))
    for version in candidates[:20]:
        if Example.objects.filter(version=version, meta__review__task=task.pk).exists():
            return version
    return None


def _annotate(version, provenance: list[dict]) -> None:
    """meta["review"] on each imported example, by its line in the file (line n = provenance[n - 1])."""
    from apps.datasets.models import Example

    changed = []
    for ex in Example.objects.filter(version=version).only("pk", "source_line", "meta"):
        line = ex.source_line
        if line and 1 <= line <= len(provenance):
            ex.meta = {**(ex.meta or {}), "review": provenance[line - 1]}
            changed.append(ex)
    Example.objects.bulk_update(changed, ["meta"], batch_size=500)


def review_preference_export(*, user, task_id: int, name: str = "") -> PreferenceExport:
    from apps.datasets.models import DatasetVersion
    from apps.datasets.services.imports import dataset_import

    task = task_for(user, task_id, need="manage")
    name = (name or "").strip() if isinstance(name, str) else ""
    if len(name) > 200 or "\x00" in name:
        raise ValidationFailed("A name is at most 200 characters.", field="name")
    rows, provenance, counts = preference_pairs(task)
    if not rows:
        skipped = [f"{counts[k]} {label}" for k, label in (
            ("whitespace_only", "changed only whitespace"), ("not_accepted", "in examples not accepted (yet)"),
            ("rejected_turn", "in rejected turns"), ("tool_calls", "with tool calls"),
            ("no_context", "with nothing before them")) if counts[k]]
        detail = f" (edited assistant turns left out: {', '.join(skipped)})" if skipped else ""
        raise ValidationFailed(f"{NO_PAIRS}: a pair is an accepted example's assistant turn that a reviewer "
                               f"rewrote{detail}.", field="edits", code="no_pairs")
    dataset = None
    last = last_preference_export(task)
    if last is not None and (last.dataset.owner_id == user.pk or getattr(user, "is_hub_admin", False)):
        dataset = last.dataset
    with tempfile.TemporaryDirectory(prefix="review-export-") as tmp:
        path = Path(tmp) / _file_name(task.pk)
        with open(path, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        version = dataset_import(user=user, name=name or f"{task.name} · preference pairs"[:200], file=str(path),
                                 dataset=dataset, target="local", background=False,
                                 base_model=task.version.base_model_id or None,
                                 note=f"Preference pairs from the edits of review task {task.pk} ({task.name})"[:500])
    if version.status != DatasetVersion.Status.READY:
        raise ValidationFailed(f"The preference dataset did not import: {version.error or version.status}.",
                               field="edits")
    _annotate(version, provenance)
    return PreferenceExport(version=version, pairs=version.example_count, counts=counts)


def review_dpo_start(*, user, task_id: int, dataset_version_id: int | None = None, base_model: str | None = None,
                     parent_version_id: int | None = None, hyperparameters: dict | None = None, name: str = "",
                     backend: str = "local"):
    from apps.datasets.models import Example
    from apps.training.services.runs import run_create

    task = task_for(user, task_id, need="manage")
    if dataset_version_id:
        if not Example.objects.filter(version_id=dataset_version_id, meta__review__task=task.pk).exists():
            raise ValidationFailed("This dataset version is not a preference export of this review task.",
                                   field="dataset_version_id")
        version_id = dataset_version_id
    else:
        last = last_preference_export(task)
        if last is None:
            raise ValidationFailed("Export the edits as preference pairs first.", field="dataset_version_id")
        version_id = last.pk
    if not parent_version_id and not base_model:
        base_model = task.version.base_model_id or None
    return run_create(user=user, dataset_version_id=version_id, method="dpo", parent_version_id=parent_version_id,
                      base_model=base_model or None, hyperparameters=dict(hyperparameters or {}), backend=backend,
                      name=(name or f"DPO · review {task.name}")[:200])
