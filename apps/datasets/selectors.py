"""Dataset reads shared by the API, the views, training and the exports.

Every signed-in user may read every dataset (a team hub); writes are checked in services.
"""
from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Func, IntegerField, OuterRef, Q, QuerySet, Subquery

from apps.core.exceptions import NotFound, ValidationFailed
from apps.datasets.models import Dataset, DatasetVersion, Example


def _require_user(user):
    if user is None or not getattr(user, "is_authenticated", False):
        raise NotFound("No such dataset.")


def dataset_list(*, user) -> QuerySet[Dataset]:
    _require_user(user)
    return Dataset.objects.select_related("owner").annotate(version_count=Count("versions")).order_by("-created_at")


def dataset_get(*, user, dataset_id: int) -> Dataset:
    _require_user(user)
    ds = Dataset.objects.select_related("owner").filter(pk=dataset_id).first()
    if ds is None:
        raise NotFound("No such dataset.")
    return ds


def pick_current(versions, pinned_id: int | None) -> DatasetVersion | None:
    """Of a dataset's versions (any order), its current one: the pinned version when it is ready, else the
    newest ready one; None when none is ready."""
    ready = [v for v in versions if v.status == DatasetVersion.Status.READY]
    pinned = next((v for v in ready if v.pk == pinned_id), None) if pinned_id else None
    return pinned or max(ready, key=lambda v: v.number, default=None)


def current_version(dataset: Dataset) -> DatasetVersion | None:
    """The version the dataset stands for (what the list shows, what its page opens on, what a run's form
    offers first): the pinned one when it is ready, else the newest ready one; None when none is ready."""
    ready = dataset.versions.filter(status=DatasetVersion.Status.READY)
    if dataset.pinned_version_id:
        v = ready.filter(pk=dataset.pinned_version_id).first()
        if v is not None:
            return v
    return ready.order_by("-number").first()


def dataset_list_rows(*, user) -> list[Dataset]:
    """dataset_list with, on each dataset, `current` (its current version, see current_version), `pinned`
    (whether that one is pinned), `attempt` (a newer version that is not ready — failed or still importing —
    shown as a note beside the current one, or None) and `newer_ready` (a newer ready version than a pinned
    current one, or None). Four queries whatever the number of datasets."""
    newest = DatasetVersion.objects.filter(dataset=OuterRef("pk")).order_by("-number").values("pk")[:1]
    newest_ready = (DatasetVersion.objects.filter(dataset=OuterRef("pk"), status=DatasetVersion.Status.READY)
                    .order_by("-number").values("pk")[:1])
    rows = list(dataset_list(user=user).annotate(newest_id=Subquery(newest), newest_ready_id=Subquery(newest_ready)))
    ids = {i for d in rows for i in (d.pinned_version_id, d.newest_id, d.newest_ready_id) if i}
    by_id = DatasetVersion.objects.defer("stats", "progress").in_bulk(list(ids))
    for d in rows:
        pinned = by_id.get(d.pinned_version_id)
        if pinned is not None and pinned.status != DatasetVersion.Status.READY:
            pinned = None
        newest_ready_v = by_id.get(d.newest_ready_id)
        d.current = pinned or newest_ready_v
        d.pinned = pinned is not None
        latest = by_id.get(d.newest_id)
        d.attempt = (latest if latest is not None and latest.status != DatasetVersion.Status.READY
                     and (d.current is None or latest.number > d.current.number) else None)
        d.newer_ready = (newest_ready_v if pinned is not None and newest_ready_v is not None
                         and newest_ready_v.number > pinned.number else None)
    return rows


def dataset_versions(*, dataset: Dataset) -> QuerySet[DatasetVersion]:
    return dataset.versions.select_related("created_by", "parent").order_by("-number")


def version_get(*, user, version_id: int) -> DatasetVersion:
    _require_user(user)
    v = DatasetVersion.objects.select_related("dataset", "dataset__owner", "parent").filter(pk=version_id).first()
    if v is None:
        raise NotFound("No such dataset version.")
    return v


def version_dataset_id(version_id: int) -> int | None:
    """The dataset a version belongs to (None when there is no such version): where to send the user back."""
    return DatasetVersion.objects.filter(pk=version_id).values_list("dataset_id", flat=True).first()


def ready_version_list(*, user, limit: int = 300) -> list[DatasetVersion]:
    """The newest ready versions (the choices of the new-run form)."""
    _require_user(user)
    return list(DatasetVersion.objects.filter(status=DatasetVersion.Status.READY).select_related("dataset")
                .order_by("-created_at")[:limit])


def example_get(*, version: DatasetVersion, index: int) -> Example | None:
    """The example at `index` (0-based, as listed) of a version, or None."""
    return version.examples.filter(index=index).first()


def version_for_dataset(*, dataset: Dataset, version_id: int | None = None, number: int | None = None) -> DatasetVersion:
    qs = dataset.versions.all()
    if version_id is not None:
        v = qs.filter(pk=version_id).first()
    elif number is not None:
        v = qs.filter(number=number).first()
    else:  # the current version (pinned, or the newest ready one), else the newest attempt
        v = current_version(dataset) or qs.order_by("-number").first()
    if v is None:
        raise NotFound("No such dataset version.")
    return v


def version_has_errors(version: DatasetVersion) -> bool:
    """Training refuses versions that are not ready or that have validation errors."""
    if version.status != DatasetVersion.Status.READY:
        return True
    v = version.validation or {}
    return bool(v.get("error_total") or v.get("errors"))


def _training_message(m: dict) -> dict:
    out = {"role": m["role"], "content": m.get("content") or ""}
    for k in ("weight", "tool_calls", "tool_call_id", "name"):
        if m.get(k) is not None:
            out[k] = m[k]
    return out


def version_training_examples(*, version: DatasetVersion, split: str | None = None) -> Iterator[dict]:
    """{"messages": [...], "tools": list | None} for each example, in order. `split` None = all."""
    if split not in (None, "train", "validation"):
        raise ValidationFailed("split must be None, 'train' or 'validation'.", field="split")
    qs = version.examples.order_by("index")
    if split:
        qs = qs.filter(split=split)
    for e in qs.only("messages", "tools", "index").iterator(chunk_size=2000):
        yield {"messages": [_training_message(m) for m in e.messages], "tools": e.tools or None}


class JSONArrayLength(Func):
    """The length of a JSON array column (PostgreSQL's jsonb_array_length, SQLite's json_array_length)."""

    function = "jsonb_array_length"
    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="json_array_length", **extra)


NO_CATEGORY = "(none)"  # how the statistics name examples without a category


def example_list(*, version: DatasetVersion, split: str | None = None, category: str | None = None,
                 code: str | None = None, q: str | None = None, role: str | None = None,
                 tokens: tuple[int, int] | None = None, turns: tuple[int, int] | None = None,
                 role_tokens: tuple[str, int, int] | None = None) -> QuerySet[Example]:
    """A version's examples in order, filtered. The ranges are inclusive and match the dataset charts' bars:
    `tokens` (token count with the chat template), `turns` (number of messages), `role_tokens` (a role's content
    tokens: (role, low, high)); `category` "(none)" is the examples without one."""
    qs = version.examples.order_by("index")
    if split:
        qs = qs.filter(split=split)
    if category:
        qs = qs.filter(category="" if category == NO_CATEGORY else category)
    if tokens:
        qs = qs.filter(token_count__gte=tokens[0], token_count__lte=tokens[1])
    if turns:
        qs = qs.annotate(n_messages=JSONArrayLength("messages")).filter(n_messages__gte=turns[0],
                                                                           n_messages__lte=turns[1])
    if role_tokens:
        r, lo, hi = role_tokens
        in_range = Q(**{f"role_tokens__{r}__gte": lo, f"role_tokens__{r}__lte": hi})
        if lo <= 0:  # a role without content tokens may be left out of the stored counts
            in_range |= Q(role_tokens__isnull=False) & ~Q(role_tokens__has_key=r)
        qs = qs.filter(in_range)
    if code:
        qs = qs.filter(issues__contains=f"|{code}|")
    if q:
        qs = qs.filter(Q(messages__icontains=q) | Q(source_file__icontains=q))
    if role:
        qs = qs.filter(messages__icontains=f'"role": "{role}"')
    return qs


def version_issues(*, version: DatasetVersion, severity: str | None = None, code: str | None = None) -> list[dict]:
    v = version.validation or {}
    items = []
    if severity in (None, "", "error"):
        items += [dict(i, severity="error") for i in v.get("errors", [])]
    if severity in (None, "", "warning"):
        items += [dict(i, severity="warning") for i in v.get("warnings", [])]
    if code:
        items = [i for i in items if i["code"] == code]
    return items


def version_issue_codes(version: DatasetVersion) -> list[tuple[str, str, int]]:
    counts = (version.validation or {}).get("counts", {})
    out = []
    for key, n in counts.items():
        sev, code = key.split(":", 1)
        out.append((sev, code, n))
    return sorted(out, key=lambda t: (t[0] != "error", -t[2]))


def version_diff(*, a: DatasetVersion, b: DatasetVersion, limit: int = 200) -> dict:
    """Examples added / removed / changed from version a to version b. An example is 'changed' when an
    example from the same source (file + line) has a different content hash."""
    def index(v):
        rows = v.examples.values_list("id", "content_hash", "source_file", "source_line", "index")
        by_hash, by_src = {}, {}
        for pk, h, f, line, idx in rows.iterator(chunk_size=5000):
            by_hash.setdefault(h, []).append(pk)
            if line is not None:
                by_src.setdefault((f, line), []).append((pk, h))
        return by_hash, by_src

    ha, sa = index(a)
    hb, sb = index(b)
    removed_ids = [pk for h, pks in ha.items() for pk in pks[len(hb.get(h, [])):]]
    added_ids = [pk for h, pks in hb.items() for pk in pks[len(ha.get(h, [])):]]
    changed = []
    added_set, removed_set = set(added_ids), set(removed_ids)
    for src, items_b in sb.items():
        items_a = sa.get(src)
        if not items_a:
            continue
        for (pb, hb_), (pa, ha_) in zip(items_b, items_a):
            if hb_ != ha_ and pb in added_set and pa in removed_set:
                changed.append((pa, pb))
                added_set.discard(pb)
                removed_set.discard(pa)
    objs = Example.objects.in_bulk(list(added_set)[:limit] + list(removed_set)[:limit]
                                   + [x for pair in changed[:limit] for x in pair])
    key = lambda e: e.index  # noqa: E731
    return {
        "added_count": len(added_set), "removed_count": len(removed_set), "changed_count": len(changed),
        "added": sorted((objs[i] for i in list(added_set)[:limit] if i in objs), key=key),
        "removed": sorted((objs[i] for i in list(removed_set)[:limit] if i in objs), key=key),
        "changed": [(objs[x], objs[y]) for x, y in changed[:limit] if x in objs and y in objs],
    }
