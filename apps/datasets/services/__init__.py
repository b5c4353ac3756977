"""Dataset writes, by concern:

- `imports`: a file becomes a new version (inline or on the worker), claim / heartbeat / reconcile;
- `versions`: the shared write path of versions and examples, revalidation and one-example edits;
- `fixes`: one-click fixes, each a new immutable version;
- `exports`: JSONL (OpenAI / Together), the Markdown report, the zip per category;
- `pins`: pin a dataset's current version (or unpin it).

Callers import this package (`from apps.datasets import services; services.dataset_import(...)`): the
names below are its public surface. Permissions: every signed-in user may read every dataset (a team
hub; the demo data is for all); only the owner or a hub admin may add versions to a dataset."""
from apps.core.liveness import worker_id
from apps.datasets.services.exports import (
    EXPORT_FORMATS,
    EXPORT_TMP_DIR,
    TOGETHER_FORMATS,
    example_export_obj,
    version_export_lines,
    version_export_zip_file,
    version_report_text,
)
from apps.datasets.services.fixes import FIXES, version_fix
from apps.datasets.services.imports import (
    COLUMN_TARGETS,
    DEFAULT_BASE_MODEL,
    HEARTBEAT_EVERY_S,
    IMPORT_MAX_REQUEUES,
    IMPORT_STALE_S,
    dataset_import,
    import_heartbeat,
    parse_column_mapping,
    version_claim,
    version_heartbeat,
    version_job_id,
    version_process,
    version_reconcile_imports,
)
from apps.datasets.services.pins import dataset_pin
from apps.datasets.services.versions import (
    INSERT_BATCH,
    can_write,
    example_edit,
    example_row,
    safe_filename,
    version_revalidate,
    version_source_path,
)

__all__ = [
    "COLUMN_TARGETS", "DEFAULT_BASE_MODEL", "EXPORT_FORMATS", "EXPORT_TMP_DIR", "FIXES", "HEARTBEAT_EVERY_S",
    "IMPORT_MAX_REQUEUES", "IMPORT_STALE_S", "INSERT_BATCH", "TOGETHER_FORMATS", "can_write", "dataset_import", "dataset_pin",
    "example_edit", "example_export_obj", "example_row", "import_heartbeat", "parse_column_mapping",
    "safe_filename", "version_claim", "version_export_lines", "version_export_zip_file", "version_fix",
    "version_heartbeat", "version_job_id", "version_process", "version_reconcile_imports", "version_report_text",
    "version_revalidate", "version_source_path", "worker_id",
]
