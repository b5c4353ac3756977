"""API shapes of monitoring: series, worker health, alert rules and alerts (django-ninja). Types and bounds are
checked here (a 422 before anything runs); the rules' cross-field checks by apps.monitoring.services.alerts, in
the same 422 shape."""
from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from ninja import Schema
from pydantic import ConfigDict, Field

from apps.core.inputs import Text
from apps.monitoring.models import METRICS

MetricName = Literal[tuple(METRICS)]


class Point(Schema):
    t: datetime
    requests: int
    errors: int = Field(..., description="5xx answers (or no status)")
    client_errors: int = Field(..., description="4xx answers")
    fallbacks: int
    error_rate: Optional[float] = Field(..., description="errors / requests (0..1); null without requests")
    p50_ms: Optional[float]
    p95_ms: Optional[float]
    ttft_p50_ms: Optional[float]
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float = Field(..., description="completion tokens per second of the bucket")
    requests_per_min: float


class Line(Schema):
    key: str
    alias: str = Field(..., description='"*": every alias; "": requests that named a model directly')
    target: str = Field(..., description='the served target (`version:12`, `provider:NAME/MODEL`); "*": all')
    label: str
    points: list[Point]


class SeriesOut(Schema):
    alias: Optional[str]
    version: Optional[str]
    minutes: int
    bucket_s: int
    since: datetime
    until: datetime
    breakdown: Optional[Literal["target", "alias"]]
    series: list[Line]
    hidden: int = Field(..., description="breakdown lines left out (only the busiest are returned)")


class Gpu(Schema):
    model_config = ConfigDict(extra="allow")

    index: int
    name: str = ""
    util_percent: Optional[float] = None
    memory_used_mb: Optional[float] = None
    memory_total_mb: Optional[float] = None
    memory_percent: Optional[float] = None


class WorkerOut(Schema):
    worker_id: str
    hostname: str
    pid: int
    queues: list[str]
    state: Literal["live", "stale", "stopped"]
    started_at: datetime
    seen_at: datetime
    seen_s_ago: int
    cpu_percent: Optional[float]
    rss_mb: Optional[float]
    host_cpu_percent: Optional[float]
    host_memory_percent: Optional[float]
    gpus: list[Gpu]


class QueueOut(Schema):
    queue: str
    waiting: int
    running: int
    delayed: int
    dead: int


class BrokerOut(Schema):
    minute: datetime
    age_s: int
    reachable: bool
    live_consumers: int
    queues: list[QueueOut]


class HostOut(Schema):
    hostname: str
    minute: datetime
    cpu_percent: Optional[float]
    memory_percent: Optional[float]
    gpu_util_percent: Optional[float]
    gpu_memory_percent: Optional[float]
    workers: int


class BrokerPoint(Schema):
    t: datetime
    live_consumers: int
    waiting: dict[str, int]


class HostPoint(Schema):
    t: datetime
    hostname: str
    cpu_percent: Optional[float]
    memory_percent: Optional[float]
    gpu_util_percent: Optional[float]
    gpu_memory_percent: Optional[float]
    workers: int


class HealthSeries(Schema):
    since: datetime
    until: datetime
    broker: list[BrokerPoint]
    hosts: list[HostPoint]


class WorkersOut(Schema):
    live: int = Field(..., description="worker processes that reported in the last minute")
    workers: list[WorkerOut]
    broker: Optional[BrokerOut] = Field(..., description="the latest broker sample; null before the first")
    hosts: list[HostOut]
    series: HealthSeries


class RuleIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(..., min_length=1, max_length=100)
    metric: MetricName
    threshold: float = Field(..., ge=0, allow_inf_nan=False, description="in the metric's unit (`unit`): % or ms; fires when above")
    alias: Text = Field("", max_length=100, description="traffic metrics: one alias, or empty for every alias")
    window_minutes: int = Field(5, ge=1, le=1440)
    min_requests: int = Field(10, ge=0, le=1_000_000, description="traffic metrics: fewer requests, no verdict")
    enabled: bool = True


class RulePatch(Schema):
    model_config = ConfigDict(extra="forbid")

    name: Optional[Text] = Field(None, min_length=1, max_length=100)
    metric: Optional[MetricName] = None
    threshold: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    alias: Optional[Text] = Field(None, max_length=100)
    window_minutes: Optional[int] = Field(None, ge=1, le=1440)
    min_requests: Optional[int] = Field(None, ge=0, le=1_000_000)
    enabled: Optional[bool] = None


class RuleOut(Schema):
    id: int
    name: str
    metric: MetricName
    unit: str
    kind: Literal["traffic", "resource"]
    alias: str
    threshold: float
    window_minutes: int
    min_requests: int
    enabled: bool
    is_default: bool
    firing: int


class AlertOut(Schema):
    id: int
    rule_id: int
    rule: str
    metric: MetricName
    unit: str
    subject: str
    state: Literal["firing", "resolved"]
    value: float
    peak_value: float
    last_value: Optional[float]
    threshold: float
    requests: Optional[int]
    fired_at: datetime
    evaluated_at: datetime
    resolved_at: Optional[datetime]
    acknowledged_at: Optional[datetime]
    acknowledged_by: Optional[str]
