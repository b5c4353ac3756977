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


def checkpoint_origins(version_ids) -> dict[int, dict]:
    """For versions promoted from a run's checkpoint (training.services.checkpoint_promote: the run keeps its
    own final version, so the promoted one has no `run`): {version id: {"run", "step", "eval_loss",
    "train_loss"}} — the run, the checkpoint's step, its validation loss and the training loss logged at
    (or last before) that step. Two queries plus one per promoted version listed."""
    from apps.training.models import Checkpoint, MetricPoint

    out = {}
    rows = (Checkpoint.objects.filter(model_version_id__in=list(version_ids)).select_related("run")
            .order_by("model_version_id", "-step"))
    for ckpt in rows:
        if ckpt.model_version_id in out:
            continue
        loss = None
        for values in (MetricPoint.objects.filter(run_id=ckpt.run_id, kind="train", step__lte=ckpt.step)
                       .order_by("-step", "-id").values_list("values", flat=True)[:20]):
            if isinstance(values, dict) and isinstance(values.get("loss"), (int, float)):
                loss = float(values["loss"])
                break
        out[ckpt.model_version_id] = {"run": ckpt.run, "step": ckpt.step, "eval_loss": ckpt.eval_loss,
                                      "train_loss": loss}
    return out


def model_version_lineage(version: ModelVersion) -> dict:
    """The version's ancestry as plain data (base model, dataset version, run, parent chain). A version promoted
    from a checkpoint names the run and step it came from (`checkpoint`), and its final loss is the training
    loss at that step when the version records none (`final_loss`)."""
    dv = version.dataset_version
    run = version.run
    origin = checkpoint_origins([version.pk]).get(version.pk) if run is None else None
    if origin is not None:
        run = origin["run"]
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
        "checkpoint": ({"step": origin["step"], "eval_loss": origin["eval_loss"], "train_loss": origin["train_loss"]}
                       if origin is not None else None),
        "final_loss": (version.final_loss if version.final_loss is not None
                       else origin["train_loss"] if origin is not None else None),
    }
