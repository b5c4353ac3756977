"""Saved new-run settings (issue 14 #4): a user saves the form's method, backend, base model and the
hyperparameters they set under a name, and picks them again next to the presets. Each user sees only theirs.

Contract: `saved_config_save(user=, name=, values=)` creates or replaces the user's config of that name
(ValidationFailed on an empty or too long name, or values that are not a settings dict); `saved_config_list(
user=)` lists them by name."""
from __future__ import annotations

from apps.core.exceptions import ValidationFailed
from apps.training.models import SavedRunConfig

_KEYS = ("method", "backend", "base_model", "hyperparameters")


def saved_config_save(*, user, name: str, values: dict) -> SavedRunConfig:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Name the settings to save them.", field="config_name")
    if len(name) > 100 or "\x00" in name:
        raise ValidationFailed("A settings name has at most 100 characters.", field="config_name")
    if not isinstance(values, dict) or not isinstance(values.get("hyperparameters", {}), dict):
        raise ValidationFailed("Settings must be an object with a hyperparameters object.", field="values")
    clean = {k: values[k] for k in _KEYS if values.get(k) not in (None, "")}
    config, _ = SavedRunConfig.objects.update_or_create(owner=user, name=name, defaults={"values": clean})
    return config


def saved_config_list(*, user) -> list[SavedRunConfig]:
    return list(SavedRunConfig.objects.filter(owner=user).order_by("name"))
