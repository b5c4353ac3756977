"""Capture rules: "keep P% of alias/model X in dataset Y" (applied by services.capture).

Field errors: `pattern` (1..200 characters, an fnmatch pattern: `production`, `gpt-*`, `*`), `percentage`
(0.01..100), `dataset` (an existing dataset the user may add versions to: its owner or an admin).
Only the rule's owner or an admin may change or delete it. A member's rule captures only that member's own
requests; an admin's captures everyone's (the Requests page's visibility, apps/traffic/selectors.py)."""
from __future__ import annotations

import math

from django.db import transaction

from apps.core.exceptions import NotFound, PermissionDenied, ValidationFailed
from apps.datasets.models import Dataset
from apps.datasets.services import can_write
from apps.traffic.models import CaptureRule
from apps.traffic.services.captures import forget_rules


def _check(*, user, pattern, percentage, dataset_id) -> tuple[str, float, Dataset]:
    pattern = (pattern or "").strip()
    if not pattern:
        raise ValidationFailed("Give an alias or model name (wildcards allowed: `gpt-*`).", field="pattern")
    if len(pattern) > 200 or "\x00" in pattern:
        raise ValidationFailed("The pattern must be at most 200 characters, without NUL bytes.", field="pattern")
    try:
        pct = float(percentage)
    except (TypeError, ValueError):
        raise ValidationFailed("Give a percentage between 0.01 and 100.", field="percentage") from None
    if not math.isfinite(pct) or not 0.01 <= pct <= 100:
        raise ValidationFailed("Give a percentage between 0.01 and 100.", field="percentage")
    try:
        pk = int(dataset_id)
    except (TypeError, ValueError):
        raise ValidationFailed("Choose a dataset.", field="dataset") from None
    dataset = Dataset.objects.filter(pk=pk).first() if 0 < pk < 2**63 else None
    if dataset is None:
        raise ValidationFailed(f"Dataset {dataset_id} does not exist.", field="dataset")
    if not can_write(user, dataset):
        raise PermissionDenied("Only the dataset's owner or an admin can capture into it.", field="dataset")
    return pattern, pct, dataset


def rule_create(*, user, pattern: str, percentage, dataset_id, enabled: bool = True,
                only_successful: bool = True) -> CaptureRule:
    if user is None or not getattr(user, "is_authenticated", False):
        raise PermissionDenied("Sign in first.")
    pattern, pct, dataset = _check(user=user, pattern=pattern, percentage=percentage, dataset_id=dataset_id)
    rule = CaptureRule.objects.create(pattern=pattern, percentage=pct, dataset=dataset, enabled=bool(enabled),
                                      only_successful=bool(only_successful), owner=user)
    forget_rules()
    return rule


def _owned(user, rule_id: int) -> CaptureRule:
    rule = CaptureRule.objects.select_for_update().filter(pk=rule_id).first()
    if rule is None:
        raise NotFound("No such capture rule.")
    if not (rule.owner_id == getattr(user, "pk", None) or getattr(user, "is_hub_admin", False)):
        raise PermissionDenied("Only the rule's owner or an admin can change it.")
    return rule


def rule_update(*, user, rule_id: int, pattern: str | None = None, percentage=None, dataset_id=None,
                enabled: bool | None = None, only_successful: bool | None = None) -> CaptureRule:
    with transaction.atomic():
        rule = _owned(user, rule_id)
        pattern, pct, dataset = _check(user=user, pattern=rule.pattern if pattern is None else pattern,
                                       percentage=rule.percentage if percentage is None else percentage,
                                       dataset_id=rule.dataset_id if dataset_id is None else dataset_id)
        rule.pattern, rule.percentage, rule.dataset = pattern, pct, dataset
        if enabled is not None:
            rule.enabled = bool(enabled)
        if only_successful is not None:
            rule.only_successful = bool(only_successful)
        rule.save(update_fields=["pattern", "percentage", "dataset", "enabled", "only_successful"])
    forget_rules()
    return rule


def rule_delete(*, user, rule_id: int) -> None:
    """Delete a rule; requests it sampled and not yet cut into a version are dropped with it."""
    with transaction.atomic():
        _owned(user, rule_id).delete()
    forget_rules()
