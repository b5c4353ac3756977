"""API shapes of deploy bundles. `BundleConfigIn` is built from the one table of settings (config.FIELDS), so the
OpenAPI schema states each bound; the service checks the same table again (and max_tokens against the model's
context length), so a form and a direct call get the same field errors."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field, create_model

from apps.core.inputs import Text
from apps.registry.bundles.config import FIELDS
from apps.registry.models import Bundle


def _field(f):
    if f.kind is str:
        return (Text | None, Field(None, max_length=int(f.maximum), description=f.help))
    return (f.kind | None, Field(None, ge=f.minimum, le=f.maximum, description=f.help))


class _Strict(Schema):
    model_config = ConfigDict(extra="forbid")


BundleConfigIn = create_model(
    "BundleConfigIn", __base__=_Strict, **{f.name: _field(f) for f in FIELDS},
    __doc__="Deployment settings; each one left out comes from the generation config or the training data.")


class BundleIn(_Strict):
    config: BundleConfigIn | None = Field(None, description="deployment settings (all optional)")


class BundleOut(Schema):
    id: int
    export_id: int
    model_version_id: int
    status: Literal[tuple(Bundle.Status.values)]
    config: dict
    path: str
    filename: str | None
    size_bytes: int | None
    error: str
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None
    job_id: int | None
    progress: dict
    download_url: str | None
