"""Bodies of /api/commands (django-ninja)."""
from __future__ import annotations

from typing import Any, Literal

from ninja import Field, Schema

from apps.core.inputs import Text
from apps.core.schemas import FieldError


class ParseIn(Schema):
    text: Text = Field(..., min_length=1, max_length=1000, description="the command, e.g. "
                                                                     "“train demo with lr 1e-5 and 3 epochs”")


class ApiCallOut(Schema):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(..., description="under this hub's origin, e.g. /api/runs")
    body: dict[str, Any] | None = Field(None, description="the JSON body to send (none for GET)")


class CommandOut(Schema):
    text: str = Field(..., description="the command as understood (whitespace and quotes cleaned)")
    action: Literal["generate", "train", "status", "deploy", "rollback", "configure", "review", "cancel", "unknown"]
    summary: str = Field(..., description="one sentence: what confirming would do, or what is missing")
    params: dict[str, Any] = Field(..., description="the resolved values (dataset, dataset_version_id, "
                                                    "learning_rate, epochs, alias, ...)")
    api: ApiCallOut | None = Field(None, description="the request that performs it; null while something is "
                                                        "missing or unresolved")
    allowed: bool = Field(..., description="false when this user may not perform it (see problems)")
    form_url: str | None = Field(None, description="the dashboard page with this action's form")
    result_url: str | None = Field(None, description="the created object's page; {field} from the api answer")
    missing: list[str] = Field(..., description="fields the user must still give")
    problems: list[FieldError]
    suggestions: list[str] = Field(..., description="complete commands to try instead")
    notes: list[str] = Field(..., description="phrases understood but not used by this hub")
    confirm: str = Field(..., description="the confirming button's label")
    hub_do: str = Field(..., description="the same command for the hub CLI")
