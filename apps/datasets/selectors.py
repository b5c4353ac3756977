"""Dataset reads shared by the API, the views, training and the exports.

Every signed-in user may read every dataset (a team hub); writes are checked in services.
"""
from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Q, QuerySet

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
    else:
        v = qs.filter(status=DatasetVersion.Status.READY).order_by("-number").first() or qs.order_by("-number").first()
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


def example_list(*, version: DatasetVersion, split: str | None = None, category: str | None = None,
                 code: str | None = None, q: str | None = None, role: str | None = None) -> QuerySet[Example]:
    qs = version.examples.order_by("index")
    if split:
        qs = qs.filter(split=split)
    if category:
        qs = qs.filter(category=category)
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
