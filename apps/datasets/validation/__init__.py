"""Validation: structural rules live with the readers (formats/rows.py); content, duplicates, tokens
and statistics here. `validate_path` runs everything on a file, folder or zip."""
from apps.datasets.validation.pipeline import (  # noqa: F401
    Annotated, ValidationResult, Validator, content_hash, estimates, split_of, validate_path,
)
