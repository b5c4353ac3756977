"""API shapes of the tool registry (django-ninja). The name rule and the call formats are stated here so that
the OpenAPI schema shows them; the services check the same rules (and the JSON schema) for every caller."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from ninja import Schema
from pydantic import Field

from apps.core.inputs import Id, JSONDict, Text
from apps.registry.tools.builtin import CALL_FORMATS
from apps.registry.tools.validate import NAME_RE

ToolName = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_RE.pattern,
                                description="letters, digits, _ and -; starts with a letter or _")]
CallFormat = Literal[tuple(CALL_FORMATS)]


class ToolOut(Schema):
    name: str
    description: str
    parameters: dict
    call_format: str
    origin: str
    observed: dict
    example_call: str
    updated_by: str | None
    updated_at: datetime
    created_at: datetime


class ToolIn(Schema):
    name: ToolName
    description: Text = Field("", max_length=4000)
    parameters: JSONDict = Field(default_factory=dict, description="JSON schema of the arguments (an object schema)")
    call_format: CallFormat = Field("openai", description="how a model writes a call: " + "; ".join(
        f"{k}: {v}" for k, v in CALL_FORMATS.items()))


class ToolPatch(Schema):
    description: Text | None = Field(None, max_length=4000)
    parameters: JSONDict | None = None
    call_format: CallFormat | None = None


class ScanIn(Schema):
    dataset_version_id: Id


class ScanTool(Schema):
    name: str
    origin: str
    created: bool
    calls: int


class ScanSkipped(Schema):
    calls: int
    names: list[str]


class ScanOut(Schema):
    dataset_version_id: int
    dataset: str
    version: int
    examples: int
    calls: int
    created: list[str]
    tools: list[ScanTool]
    skipped: ScanSkipped
    seconds: float
