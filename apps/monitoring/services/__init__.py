"""Monitoring writes, by concern (callers import this package):

- `aggregation`: request logs -> per-minute roll-ups (`rollup_run`, `traffic_stats`), retention (`monitoring_purge`);
- `health`: worker heartbeats (`worker_heartbeat_record`, `worker_stopped`), the minute's host and broker samples
  (`health_sample`);
- `alerts`: alert rules (`alert_rule_create`, `alert_rule_update`, `alert_rule_delete`), the evaluator
  (`alerts_evaluate`), `alert_acknowledge`."""
from apps.monitoring.services.aggregation import monitoring_purge, rollup_run, traffic_stats
from apps.monitoring.services.alerts import (alert_acknowledge, alert_rule_create, alert_rule_delete,
                                             alert_rule_update, alerts_evaluate)
from apps.monitoring.services.health import health_sample, worker_heartbeat_record, worker_stopped

__all__ = ["alert_acknowledge", "alert_rule_create", "alert_rule_delete", "alert_rule_update", "alerts_evaluate",
           "health_sample", "monitoring_purge", "rollup_run", "traffic_stats", "worker_heartbeat_record",
           "worker_stopped"]
