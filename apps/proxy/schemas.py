"""API shapes of providers and alias chains (django-ninja). Types and lengths are checked here (a 422 before any
service runs); ranges, names and references by the services (apps.proxy.providers), which answer field errors
in the same 422 shape. A provider's key goes in, never out: the output says `has_key` only."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from apps.core.inputs import Text

Kind = Literal["openai", "anthropic"]


class TimeoutsIn(Schema):
    connect_s: float | None = Field(None, description="TCP/TLS connect, seconds (0.1–120; default 5)")
    first_byte_s: float | None = Field(None, description="until the first content of an answer (default 60)")
    total_s: float | None = Field(None, description="the whole call (default 600)")


class TimeoutsOut(Schema):
    connect_s: float
    first_byte_s: float
    total_s: float


class ProviderIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(..., max_length=100, description="letters, digits, `.`, `_`, `-` (e.g. openrouter)")
    kind: Kind = Field(..., description="openai: any OpenAI-compatible server; anthropic: the Messages API")
    base_url: Text = Field(..., max_length=500, description="e.g. https://api.openai.com/v1 or "
                                                             "https://api.anthropic.com")
    api_key: Text | None = Field(None, max_length=4000, description="stored encrypted; never returned")
    timeouts: TimeoutsIn | None = None
    max_concurrency: int | None = Field(None, description="requests in flight per web process; none: no cap")
    context_length: int | None = Field(None, description="tokens; longer prompts skip this provider's targets")
    enabled: bool = True


class ProviderPatch(Schema):
    """Only the fields sent change; `api_key: null` (or "") removes the key."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, max_length=100)
    kind: Kind | None = None
    base_url: Text | None = Field(None, max_length=500)
    api_key: Text | None = Field(None, max_length=4000)
    timeouts: TimeoutsIn | None = None
    max_concurrency: int | None = None
    context_length: int | None = None
    enabled: bool | None = None


class ProviderOut(Schema):
    id: int
    name: str
    kind: Kind
    base_url: str
    has_key: bool
    timeouts: TimeoutsOut
    max_concurrency: int | None
    context_length: int | None
    enabled: bool
    models: list[str]
    models_fetched_at: datetime | None
    used_by: list[str]
    created_at: datetime
    updated_at: datetime


class ProviderModelsOut(Schema):
    provider_id: int
    models: list[str]
    fetched_at: datetime | None


class TargetIn(Schema):
    model_config = ConfigDict(extra="forbid")

    model_version_id: int | None = Field(None, description="a hub model version")
    provider: Text | None = Field(None, max_length=100, description="a provider's name (with `model`)")
    model: Text | None = Field(None, max_length=300, description="the provider's model id")


class ChainSettingsIn(Schema):
    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, description="used when a request sets none (0–2)")
    max_tokens: int | None = Field(None, description="cap on the answer's tokens (also the default)")
    timeout_s: float | None = Field(None, description="per target: to the first byte and in total")
    system_prefix: Text | None = Field(None, max_length=50_000, description="put before the system prompt")
    tools_allow: list[Text] | None = Field(None, description="tool names that reach the model; the others "
                                                             "are dropped (and counted in the request log)")


class ChainIn(Schema):
    model_config = ConfigDict(extra="forbid")

    targets: list[TargetIn] = Field(..., description="in order; [] serves the alias's deployed version")
    settings: ChainSettingsIn | None = Field(None, description="omitted: unchanged")


class ChainSettingsOut(Schema):
    temperature: float | None
    max_tokens: int | None
    timeout_s: float | None
    system_prefix: str
    tools_allow: list[str] | None


class TargetOut(Schema):
    position: int
    kind: Literal["model_version", "provider"]
    label: str = Field(..., description="as in x-hub-served-by and the request log")
    model_version_id: int | None
    model_version_name: str | None
    provider: str | None
    provider_id: int | None
    provider_kind: Kind | None
    model: str
    enabled: bool
    breaker: Literal["closed", "open", "half_open"]


class ChainOut(Schema):
    alias: str
    configured: bool = Field(..., description="false: no chain, the alias serves its deployed version")
    targets: list[TargetOut]
    settings: ChainSettingsOut
    deployed_version_id: int | None
    updated_at: datetime | None
    updated_by: str | None
