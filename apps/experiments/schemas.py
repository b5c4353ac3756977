"""API shapes of experiments, canaries, feedback and rollout events (django-ninja). Ranges and choices are in
the schema, so a bad value is a 422 with its field before any service runs; the services check again."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from apps.core.inputs import Id, Slug, Text

StickyBy = Literal["api_key", "user", "session", "request"]
MetricName = Literal["feedback", "error_rate", "tool_call_validity", "latency_ms"]


class ArmIn(Schema):
    model_config = ConfigDict(extra="forbid")
    model_version_id: Id
    weight: int = Field(..., ge=0, le=10_000, description="relative share of units (0 sends none)")


class ExperimentIn(Schema):
    alias: Slug = Field(..., description="an alias that exists (registry alias or chain)")
    arms: list[ArmIn] = Field(..., min_length=2, max_length=8, description="the first arm is the control")
    sticky_by: StickyBy = "api_key"
    metric: MetricName = Field("feedback", description="the primary metric the sequential test decides on")
    name: Text | None = Field(None, max_length=200)


class ReasonIn(Schema):
    reason: Text | None = Field(None, max_length=2000)


class PromoteIn(Schema):
    arm: str | None = Field(None, max_length=16, pattern=r"^[A-Za-z]+$",
                            description="the arm to promote; default: the verdict's winner (a canary: `canary`)")
    reason: Text | None = Field(None, max_length=2000)


class FeedbackIn(Schema):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                            description="the x-request-id of a /v1 answer")
    thumbs: bool | None = Field(None, description="true: thumbs up")
    score: float | None = Field(None, ge=0, le=1, description="0..1 (used instead of thumbs when both are given)")
    comment: Text | None = Field(None, max_length=10_000)
    edit_accepted: bool | None = Field(None, description="the user kept the suggested edit")


class FeedbackOut(Schema):
    id: int
    request_id: str
    thumbs: bool | None
    score: float | None
    value: float
    comment: str
    edit_accepted: bool | None
    experiment_id: int | None
    arm: str
    created_at: datetime
    updated_at: datetime


class ArmMetrics(Schema):
    requests: int
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    latency_mean: float | None
    latency_var: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    tool_calls: int
    tool_calls_valid: int
    tool_call_validity: float | None
    feedback_n: int
    feedback_mean: float | None
    feedback_var: float | None


class ArmOut(Schema):
    name: str
    model_version_id: int
    model_version_name: str
    weight: int
    units: int
    metrics: ArmMetrics


class Comparison(Schema):
    diff: float | None
    p: float
    ci_low: float | None
    ci_high: float | None
    ran: bool
    better: bool | None


class VerdictOut(Schema):
    status: Literal["collecting", "winner", "control_wins", "no_difference_yet"]
    winner: str | None
    metric: str
    stop: bool
    message: str


class SrmOut(Schema):
    chi2: float | None
    p: float | None
    mismatch: bool
    expected: list[float]
    ran: bool


class EventOut(Schema):
    id: int
    created_at: datetime
    alias: str
    kind: str
    experiment_id: int | None
    experiment_kind: str | None
    metric: str
    value: float | None
    threshold: float | None
    values: dict
    window_start: datetime | None
    window_end: datetime | None
    message: str
    actor: str | None
    webhook_status: str
    url: str | None


class ExperimentOut(Schema):
    id: int
    name: str
    alias: str
    kind: str
    status: str
    sticky_by: str
    metric: str
    thresholds: dict
    window_minutes: int
    min_requests: int
    hold_minutes: int
    auto_promote: bool
    winner: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str
    created_by: str | None
    arms: list[dict]


class ExperimentDetail(ExperimentOut):
    per_arm: list[ArmOut]
    comparisons: dict[str, dict[str, Comparison]] = Field(
        ..., description="metric -> treatment arm -> its difference from the control, always-valid p and interval")
    alpha: float
    verdict: VerdictOut
    srm: SrmOut
    events: list[EventOut]
    canary: dict | None = Field(None, description="a canary's last evaluation: window, metrics, ready_at")
