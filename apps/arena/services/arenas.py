"""Creating an arena, and its owner's actions on it (cancel the generation, close the voting).

Contract: `arena_create` checks everything first and answers every problem at once as field errors (422:
`name`, `contestants.<i>`, `dataset_version_id`, `prompts.<i>`, `voters`, `overlap`, `temperature`,
`max_tokens`, `concurrency`, `judge_model`, ...), writing nothing; then, in one transaction, the arena, its
contestants, voters and items (the prompts, copied: a dataset version's validation split — each example
up to its last assistant turn — or the list given), and its generation job (`arena.generate`, sent to the
worker after commit). `arena_cancel` asks the running job(s) to stop; `arena_close` ends the voting (leases
given back) and opens the results to every participant.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.arena import permissions as perms
from apps.arena.models import Arena, ArenaItem, ArenaVote, ArenaVoter, Contestant
from apps.arena.services.common import arena_for, users_by_name
from apps.arena.services.targets import parse_target
from apps.core.exceptions import ApplicationError, Conflict, ValidationFailed
from apps.core.jobs import services as job_services

MIN_CONTESTANTS, MAX_CONTESTANTS = 2, 8
MAX_PROMPTS = 1000
DEFAULT_DATASET_PROMPTS = 100
MAX_PROMPT_CHARS = 100_000
PROMPT_ROLES = ("system", "user", "assistant")


class _Errors:
    def __init__(self):
        self.items: list[dict] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def catch(self, exc: ApplicationError) -> None:
        self.items.extend(exc.errors or [{"field": exc.field, "message": exc.message}])

    def raise_any(self) -> None:
        if self.items:
            first = "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"]
                              for e in self.items[:3])
            raise ValidationFailed("Invalid arena: " + first, errors=self.items)


def _number(errors: _Errors, field: str, value, lo: float, hi: float, *, whole: bool = False):
    if value is None or value == "":
        return None
    try:
        num = float(value)
    except (TypeError, ValueError):
        errors.add(field, "Must be a number.")
        return None
    if isinstance(value, bool) or not lo <= num <= hi or (whole and num != int(num)):
        errors.add(field, f"Must be {'a whole number ' if whole else ''}between {lo:g} and {hi:g}.")
        return None
    return int(num) if whole else num


# -- prompts ---------------------------------------------------------------------------------------------
def prompt_messages(entry, *, field: str) -> list[dict]:
    """A prompt given as text (one user turn), a list of chat messages, or {"messages": [...]}."""
    if isinstance(entry, str):
        entry = [{"role": "user", "content": entry}]
    elif isinstance(entry, dict):
        entry = entry.get("messages")
    if not isinstance(entry, list) or not entry:
        raise ValidationFailed("A prompt is text, or a non-empty list of chat messages.", field=field)
    msgs, size = [], 0
    for m in entry:
        if not isinstance(m, dict) or m.get("role") not in PROMPT_ROLES or not isinstance(m.get("content"), str):
            raise ValidationFailed("Each message is {role: system | user | assistant, content: text}.", field=field)
        if "\x00" in m["content"]:
            raise ValidationFailed("A prompt must not contain NUL bytes.", field=field)
        size += len(m["content"])
        msgs.append({"role": m["role"], "content": m["content"]})
    if msgs[-1]["role"] != "user" or not msgs[-1]["content"].strip():
        raise ValidationFailed("A prompt ends with a non-empty user message.", field=field)
    if size > MAX_PROMPT_CHARS:
        raise ValidationFailed(f"A prompt has at most {MAX_PROMPT_CHARS} characters.", field=field)
    return msgs


def example_prompt(messages: list) -> list[dict] | None:
    """An example's conversation up to its last assistant turn (the answer the contestants give instead);
    None when that is not a plain chat prompt ending with a user turn (tool turns, no user turn)."""
    if not isinstance(messages, list):
        return None
    last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
               default=len(messages))
    head = messages[:last]
    try:
        return prompt_messages(head, field="prompt") if head else None
    except ValidationFailed:
        return None


def _dataset_prompts(errors: _Errors, user, version_id, limit: int) -> tuple[object, list[tuple[list, int]]]:
    from apps.datasets import selectors as datasets
    from apps.datasets.models import DatasetVersion
    from apps.core.exceptions import NotFound

    try:
        version = datasets.version_get(user=user, version_id=int(version_id))
    except (NotFound, TypeError, ValueError):
        errors.add("dataset_version_id", "No such dataset version.")
        return None, []
    if version.status != DatasetVersion.Status.READY:
        errors.add("dataset_version_id", f"Dataset version {version.pk} is {version.status}, not ready.")
        return version, []
    out = []
    qs = version.examples.filter(split="validation").order_by("index").values_list("index", "messages")
    for index, messages in qs.iterator(chunk_size=500):
        prompt = example_prompt(messages)
        if prompt is not None:
            out.append((prompt, index))
            if len(out) >= limit:
                break
    if not out:
        errors.add("dataset_version_id", f"{version.dataset.name} v{version.number} has no validation example "
                                         "that makes a chat prompt; choose another version or give prompts.")
    return version, out


# -- create ----------------------------------------------------------------------------------------------
def arena_create(*, user, name: str, contestants: list, dataset_version_id: int | None = None,
                 prompts: list | None = None, max_prompts: int | None = None, voters: list[str] | None = None,
                 overlap: int = 1, temperature: float | None = 0.7, max_tokens: int | None = 512,
                 concurrency: int = 4, judge_model: str | None = None, judge_rubric: str = "",
                 lease_seconds: int = 900) -> Arena:
    perms.require(perms.can_create(user), "Only members and admins can create arenas.")
    errors = _Errors()
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > 200 or "\x00" in name:
        errors.add("name", "Give the arena a name (at most 200 characters).")

    targets = []
    if not isinstance(contestants, list) or not MIN_CONTESTANTS <= len(contestants) <= MAX_CONTESTANTS:
        errors.add("contestants", f"Pick {MIN_CONTESTANTS} to {MAX_CONTESTANTS} contestants.")
    else:
        seen: dict = {}
        for i, spec in enumerate(contestants):
            try:
                t = parse_target(spec, field=f"contestants.{i}")
            except ApplicationError as exc:
                errors.catch(exc)
                continue
            if t.key in seen:
                errors.add(f"contestants.{i}", f"{t.label} is already contestant {seen[t.key] + 1}.")
                continue
            seen[t.key] = i
            targets.append(t)
        labels = [t.label for t in targets]
        for i, t in enumerate(targets):
            if labels.count(t.label) > 1:
                t.label = f"{t.label} #{i + 1}"

    items: list[tuple[list, int | None]] = []
    version = None
    limit = _number(errors, "max_prompts", max_prompts, 1, MAX_PROMPTS, whole=True) or DEFAULT_DATASET_PROMPTS
    if dataset_version_id is not None and prompts:
        errors.add("prompts", "Give prompts or a dataset version, not both.")
    elif dataset_version_id is not None:
        version, items = _dataset_prompts(errors, user, dataset_version_id, limit)
    elif prompts:
        if not isinstance(prompts, list) or len(prompts) > MAX_PROMPTS:
            errors.add("prompts", f"Give a list of at most {MAX_PROMPTS} prompts.")
        else:
            for i, p in enumerate(prompts):
                try:
                    items.append((prompt_messages(p, field=f"prompts.{i}"), None))
                except ValidationFailed as exc:
                    errors.catch(exc)
    else:
        errors.add("prompts", "Give prompts, or a dataset version whose validation split holds them.")

    voter_users = []
    try:
        voter_users = users_by_name(voters, field="voters")
    except ValidationFailed as exc:
        errors.catch(exc)
    overlap = _number(errors, "overlap", overlap, 1, 20, whole=True) or 1
    if voter_users and overlap > len(voter_users):
        errors.add("overlap", f"Overlap {overlap} needs at least {overlap} voters; {len(voter_users)} listed.")
    params = {"temperature": _number(errors, "temperature", temperature, 0, 2),
              "max_tokens": _number(errors, "max_tokens", max_tokens, 1, 32768, whole=True),
              "concurrency": _number(errors, "concurrency", concurrency, 1, 32, whole=True) or 4}
    lease = _number(errors, "lease_seconds", lease_seconds, 60, 86400, whole=True) or 900

    judge = ""
    if judge_model:
        try:
            judge = parse_target(judge_model, field="judge_model").name
        except ApplicationError as exc:
            errors.catch(exc)
    rubric = judge_rubric if isinstance(judge_rubric, str) else ""
    if len(rubric) > 20000 or "\x00" in rubric:
        errors.add("judge_rubric", "The rubric is text of at most 20000 characters.")
    errors.raise_any()

    with transaction.atomic():
        arena = Arena.objects.create(
            name=name, owner=user, source=Arena.Source.DATASET if version is not None else Arena.Source.PROMPTS,
            dataset_version=version, overlap=overlap, params=params, lease_seconds=lease, judge_model=judge,
            judge_rubric=rubric.strip())
        ArenaVoter.objects.bulk_create([ArenaVoter(arena=arena, user=u) for u in voter_users])
        Contestant.objects.bulk_create([
            Contestant(arena=arena, position=i, label=t.label[:200], kind=t.kind, model=t.model,
                       model_version=t.model_version, provider=t.provider) for i, t in enumerate(targets)])
        ArenaItem.objects.bulk_create([ArenaItem(arena=arena, index=i, messages=msgs, example_index=ex)
                                       for i, (msgs, ex) in enumerate(items)], batch_size=500)
        arena.job = job_services.job_create(kind="arena.generate", owner=user, target=arena, args=[arena.pk],
                                            phase="queued",
                                            progress={"current": 0, "total": len(items) * len(targets),
                                                      "unit": "answers"})
        arena.save(update_fields=["job"])
    return arena


# -- owner's actions ---------------------------------------------------------------------------------------
def arena_cancel(*, user, arena_id: int) -> Arena:
    """Stop the generation (and a judge run) in whatever phase it is."""
    arena = arena_for(user, arena_id, need="manage")
    active = [j for j in (arena.job, arena.judge_job) if j is not None and j.is_active]
    if not active:
        raise Conflict("Nothing is running in this arena.", code="nothing_running")
    for job in active:
        job_services.job_request_cancel(user=user, job_id=job.pk)
    return Arena.objects.get(pk=arena.pk)


def arena_close(*, user, arena_id: int) -> Arena:
    """End the voting: held pairs are given back, no vote can change any more, and every participant may see
    the results."""
    from apps.arena.realtime import progress_on_commit

    with transaction.atomic():
        arena = arena_for(user, arena_id, need="manage", lock=True, status=(Arena.Status.READY,))
        ArenaVote.objects.filter(arena=arena).exclude(status=ArenaVote.Status.DONE).delete()
        arena.status, arena.closed_at = Arena.Status.CLOSED, timezone.now()
        arena.save(update_fields=["status", "closed_at"])
        progress_on_commit(arena.pk, "closed")
    return arena
