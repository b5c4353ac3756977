"""Traffic writes, by concern (callers import this package):

- `captures`: the hook of apps.proxy.services.request_log_record (index + capture rules), `capture_flush`
  (batches -> versions), `reindex_missing`, `sampled`;
- `exports`: "Add to dataset" (`traffic_export`) and the version build (`export_process`);
- `rules`: capture rules (`rule_create`, `rule_update`, `rule_delete`)."""
from apps.traffic.services.captures import (capture, capture_flush, captured, entry_upsert, reindex_missing,
                                           sampled)
from apps.traffic.services.exports import export_process, request_examples, traffic_export
from apps.traffic.services.rules import rule_create, rule_delete, rule_update

__all__ = ["capture", "capture_flush", "captured", "entry_upsert", "export_process", "reindex_missing", "request_examples",
           "rule_create", "rule_delete", "rule_update", "sampled", "traffic_export"]
