"""The current version of a dataset: pin one (or unpin, so the newest ready version is current again).

Contract: `dataset_pin(user=, dataset_id=, version_id=)` — only the dataset's owner or a hub admin
(`can_write`, PermissionDenied otherwise); the version must belong to the dataset (NotFound) and be ready
(Conflict: a failed or importing version cannot stand for the dataset). `version_id=None` unpins. Pinning
changes no version: versions stay immutable; only `Dataset.pinned_version` moves."""
from __future__ import annotations

from django.db import transaction

from apps.core.exceptions import Conflict, NotFound, PermissionDenied
from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.services.versions import can_write


@transaction.atomic
def dataset_pin(*, user, dataset_id: int, version_id: int | None) -> Dataset:
    dataset = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
    if dataset is None:
        raise NotFound("No such dataset.")
    if not can_write(user, dataset):
        raise PermissionDenied("Only the dataset's owner or an admin can pin its current version.")
    if version_id is not None:
        version = dataset.versions.filter(pk=version_id).first()
        if version is None:
            raise NotFound(f"Dataset {dataset.name!r} has no version {version_id}.", field="version_id")
        if version.status != DatasetVersion.Status.READY:
            raise Conflict(f"Version {version.number} is {version.status}: only a ready version can be pinned.",
                           field="version_id")
    dataset.pinned_version_id = version_id
    dataset.save(update_fields=["pinned_version"])
    return dataset
