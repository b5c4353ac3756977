"""Writes of the sources app, by concern:

- `sources`: register (path / URL / archive, one or several repositories), discover, rules, delete, re-scan,
  the first-run demo source;
- `analyses`: the "source.analyse" job (languages, complexity, components, history, licence);
- `options`: generation options and the estimate before launch;
- `generations`: the "source.generate" job (generators, tests, teacher, incremental) → a dataset version and
  the bundle;
- `teacher`: the teacher model's endpoint and its short-lived key.

Callers import this package (`from apps.sources import services`). Permissions: admins and members create
sources; a member manages only their own, an admin all (checked here, never only in views)."""
from apps.sources.services.analyses import analysis_process, analysis_start, latest_analysis, merge_results
from apps.sources.services.generations import (
    BUNDLE_ZIP,
    FORMAT,
    base_generation,
    bundle_zip_path,
    generation_estimate,
    generation_get_for,
    generation_prefetch,
    generation_process,
    generation_start,
    work_dir,
)
from apps.sources.services.options import default_generators, estimate, generator_names, parse_options
from apps.sources.services.sources import (
    can_create,
    can_manage,
    demo_source,
    demo_source_prepare,
    location_key,
    managed_source,
    parse_rules,
    repo_error,
    repo_path,
    rules_text,
    scan_repos,
    source_create,
    source_delete,
    source_discover,
    source_for_location,
    source_refresh_archive,
    source_update,
)

__all__ = [
    "BUNDLE_ZIP", "FORMAT", "analysis_process", "analysis_start", "base_generation", "bundle_zip_path",
    "can_create", "can_manage", "default_generators", "demo_source", "demo_source_prepare", "estimate",
    "generation_estimate", "generation_get_for", "generation_prefetch", "generation_process",
    "generation_start", "generator_names", "latest_analysis", "location_key", "managed_source", "merge_results",
    "parse_options", "parse_rules", "repo_error", "repo_path", "rules_text", "scan_repos", "source_create",
    "source_delete", "source_discover", "source_for_location", "source_refresh_archive", "source_update",
    "work_dir",
]
