"""Monitoring rows: per-minute roll-ups of the proxy's request logs, worker and host health, alert rules and
alerts. Every row here is written by a worker (workers/monitoring.py) or a service; nothing on /v1 writes one.

Contract:
- `MinuteStat`: one minute of proxy traffic for one cell (alias, target). A cell's `alias` is the alias the
  client asked for ("" for a request that named a model directly) and `target` the `served_by` that answered
  ("" when none did); "*" in either column is the roll-up over every value of it, so (alias, "*") is an alias
  over all its versions and ("*", "*") the whole hub. A minute's rows are always replaced together, so they
  are exactly what the request logs of that minute say at the last aggregation (services/aggregation.py).
  `errors` are server-side failures (status >= 500, or no status); `client_errors` are 4xx answers.
  Latency percentiles count successful requests only (`ok`: status 1..399 with a latency), TTFT the
  successful ones that report one; both as PostgreSQL's percentile_cont (linear interpolation).
- `RollupState`: the aggregation's watermark (the highest request-log id already rolled up) and the minutes
  still to recompute.
- `WorkerProcess`: one Dramatiq worker process's heartbeat (every REPORT_S seconds from the process itself):
  its own CPU and memory, its host's CPU, memory and GPUs. Live while seen within services.health.STALE_S.
- `HostSample` / `BrokerSample`: once a minute, each host's resource use and the broker's queue depths and
  live consumers (the Worker health plots).
- `AlertRule` / `Alert`: a threshold on one metric (METRICS) over a window, for one alias or every alias
  (traffic metrics) or every host (resource metrics); at most one firing alert per (rule, subject).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.db.models import Q

ALL = "*"


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str  # what a threshold is written in: "%" or "ms"
    kind: str  # "traffic" (per alias, from the request logs) or "resource" (per host)
    help: str


# The one table of alert metrics: the API's enum, the form's choices, the evaluator's dispatch, the docs.
METRICS: dict[str, Metric] = {
    "error_rate": Metric("Error rate", "%", "traffic", "share of requests answered with a 5xx (or no status)"),
    "latency_p95": Metric("Latency p95", "ms", "traffic", "95th percentile latency of successful requests"),
    "latency_p50": Metric("Latency p50", "ms", "traffic", "median latency of successful requests"),
    "ttft_p50": Metric("Time to first token p50", "ms", "traffic", "median TTFT of successful streamed requests"),
    "cpu": Metric("CPU", "%", "resource", "a host's CPU use, averaged over the window"),
    "memory": Metric("Memory", "%", "resource", "a host's memory use, averaged over the window"),
    "gpu_memory": Metric("GPU memory", "%", "resource", "a host's fullest GPU's memory, averaged over the window"),
    "gpu_util": Metric("GPU utilisation", "%", "resource", "a host's busiest GPU, averaged over the window"),
}


class MinuteStat(models.Model):
    minute = models.DateTimeField()
    alias = models.CharField(max_length=200)
    target = models.CharField(max_length=300)
    requests = models.PositiveIntegerField()
    errors = models.PositiveIntegerField()
    client_errors = models.PositiveIntegerField()
    fallbacks = models.PositiveIntegerField()
    ok = models.PositiveIntegerField()
    p50_ms = models.FloatField(null=True)
    p95_ms = models.FloatField(null=True)
    ttft_p50_ms = models.FloatField(null=True)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["minute"]
        constraints = [models.UniqueConstraint(fields=["minute", "alias", "target"], name="monitoring_minute_cell")]
        indexes = [models.Index(fields=["alias", "target", "minute"], name="monitoring_cell_time")]


class RollupState(models.Model):
    name = models.CharField(max_length=50, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    pending = models.JSONField(default=list, blank=True)  # [[start, end), ...] ISO minutes still to recompute
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_duration_ms = models.FloatField(null=True, blank=True)
    last_minutes = models.PositiveIntegerField(default=0)  # minutes recomputed by the last run
    last_rows = models.PositiveIntegerField(default=0)  # MinuteStat rows it wrote


class WorkerProcess(models.Model):
    worker_id = models.CharField(max_length=200, unique=True)  # hostname:pid
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    cpu_percent = models.FloatField(null=True)  # this process, of one core
    rss_mb = models.FloatField(null=True)
    host_cpu_percent = models.FloatField(null=True)
    host_memory_percent = models.FloatField(null=True)
    gpus = models.JSONField(default=list, blank=True)  # [{index, name, util_percent, memory_used_mb, memory_total_mb}]

    class Meta:
        ordering = ["hostname", "pid"]


class HostSample(models.Model):
    minute = models.DateTimeField()
    hostname = models.CharField(max_length=200)
    cpu_percent = models.FloatField(null=True)
    memory_percent = models.FloatField(null=True)
    gpu_util_percent = models.FloatField(null=True)
    gpu_memory_percent = models.FloatField(null=True)
    workers = models.PositiveIntegerField(default=0)  # live worker processes on the host

    class Meta:
        ordering = ["minute", "hostname"]
        constraints = [models.UniqueConstraint(fields=["minute", "hostname"], name="monitoring_host_minute")]


class BrokerSample(models.Model):
    minute = models.DateTimeField(unique=True)
    reachable = models.BooleanField(default=True)
    live_consumers = models.PositiveIntegerField(default=0)  # Dramatiq's own heartbeats (one per worker process)
    queues = models.JSONField(default=dict, blank=True)  # {queue: {waiting, running, delayed, dead}}

    class Meta:
        ordering = ["minute"]


class AlertRule(models.Model):
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=32, choices=[(k, m.label) for k, m in METRICS.items()])
    alias = models.CharField(max_length=200, blank=True)  # traffic metrics: "" = every alias on its own
    threshold = models.FloatField()  # in the metric's unit; fires when the value is above it
    window_minutes = models.PositiveIntegerField(default=5)
    min_requests = models.PositiveIntegerField(default=10)  # traffic metrics: fewer requests in the window -> no verdict
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["metric", "alias", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]


class Alert(models.Model):
    class State(models.TextChoices):
        FIRING = "firing"
        RESOLVED = "resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject = models.CharField(max_length=300)  # the alias ("" = direct model requests) or the host
    state = models.CharField(max_length=16, choices=State.choices, default=State.FIRING)
    value = models.FloatField()  # when it fired
    peak_value = models.FloatField()
    last_value = models.FloatField(null=True)  # at the last evaluation (None: no verdict, e.g. no traffic)
    threshold = models.FloatField()  # the rule's, when it fired
    requests = models.PositiveIntegerField(null=True)  # traffic metrics: requests in the window when it fired
    fired_at = models.DateTimeField()
    evaluated_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")

    class Meta:
        ordering = ["-fired_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["rule", "subject"], condition=Q(state="firing"),
                                               name="monitoring_one_firing_alert")]
        indexes = [models.Index(fields=["state", "-fired_at"], name="monitoring_alert_state")]
