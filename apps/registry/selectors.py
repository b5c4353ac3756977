"""Reads for the registry, shared by /api, the pages and the proxy."""
from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.core.exceptions import NotFound
from apps.registry.models import Alias, BaseModel, Deployment, ModelVersion


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.all()


def model_version_list() -> QuerySet[ModelVersion]:
    return (ModelVersion.objects.select_related("base_model", "run", "dataset_version__dataset", "parent",
                                                "created_by")
            .prefetch_related(Prefetch("aliases", queryset=Alias.objects.order_by("name"))))


def local_model_version_list(*, limit: int = 200) -> list[ModelVersion]:
    """The newest versions with weights on this machine (the parents a run can continue from)."""
    return list(ModelVersion.objects.exclude(kind=ModelVersion.Kind.REMOTE).order_by("-created_at")[:limit])


def model_version_get(version_id: int) -> ModelVersion:
    version = model_version_list().filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"Model version {version_id} does not exist.")
    return version


def alias_list() -> QuerySet[Alias]:
    return Alias.objects.select_related("model_version", "updated_by").order_by("name")


def alias_get(name: str) -> Alias:
    alias = alias_list().filter(name=name).first()
    if alias is None:
        raise NotFound(f"Alias {name!r} does not exist.")
    return alias


def deployment_history(*, alias: str | None = None, version_id: int | None = None, limit: int = 50):
    qs = Deployment.objects.select_related("model_version", "previous_version", "actor")
    if alias:
        qs = qs.filter(alias_name=alias)
    if version_id:
        qs = qs.filter(model_version_id=version_id)
    return qs[:limit]


SERVED_ACTIONS = ("deploy", "rollback", "promote")  # rows after which the alias served their version


def alias_rollback_targets(name: str, *, current_version_id: int | None = None, limit: int = 500) -> list[Deployment]:
    """The versions `name` can roll back to, newest first: each version it served before other than the
    current one, as the latest deployment that put it there (no rollback that would change nothing)."""
    if current_version_id is None:
        current_version_id = Alias.objects.filter(name=name).values_list("model_version_id", flat=True).first()
        if current_version_id is None:
            return []
    seen, out = {current_version_id}, []
    rows = (Deployment.objects.filter(alias_name=name, action__in=SERVED_ACTIONS)
            .select_related("model_version", "actor").order_by("-created_at", "-id")[:limit])
    for d in rows:
        if d.model_version_id not in seen:
            seen.add(d.model_version_id)
            out.append(d)
    return out


def alias_can_rollback(name: str) -> bool:
    return bool(alias_rollback_targets(name))


def alias_experiment(name: str):
    """The experiment or canary running on the alias (apps.experiments), or None."""
    from apps.experiments.selectors import running_on

    return running_on(name)


def model_version_lineage(version: ModelVersion) -> dict:
    """The version's ancestry as plain data (base model, dataset version, run, parent chain)."""
    dv = version.dataset_version
    run = version.run
    chain = []
    p, seen = version.parent, set()
    while p is not None and p.pk not in seen and len(chain) < 20:
        seen.add(p.pk)
        chain.append({"id": p.pk, "name": p.name})
        p = p.parent
    return {
        "base_model": ({"id": version.base_model.pk, "name": version.base_model.name}
                       if version.base_model else None),
        "dataset_version": ({"id": dv.pk, "dataset_id": dv.dataset_id, "dataset_name": dv.dataset.name,
                             "number": dv.number, "example_count": dv.example_count} if dv else None),
        "run": ({"id": run.pk, "name": run.name, "status": run.status, "method": run.method,
                 "backend": run.backend} if run else None),
        "parent": chain[0] if chain else None,
        "ancestors": chain,
    }
