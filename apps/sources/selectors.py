"""Reads of the sources app shared by the API, the pages and the CLI, scoped to the user: a member sees the
sources they own (and their analyses and generations), an admin all; anything else is a 404.

Also: the analysis charts' data (language mix, complexity histogram, components, churn), the JSON shapes of
the API, and an example's provenance with its source lines read back from the repository at its commit."""
from __future__ import annotations

from django.db.models import Count, QuerySet

from apps.core.exceptions import NotFound
from apps.sources.models import Analysis, Generation, JobStatus, Source
from apps.sources.services.sources import can_manage, is_admin


def _require_user(user, what: str = "source"):
    if user is None or not getattr(user, "is_authenticated", False):
        raise NotFound(f"No such {what}.")


def source_list(*, user) -> QuerySet[Source]:
    _require_user(user)
    qs = Source.objects.select_related("owner", "dataset").annotate(repo_count=Count("repos", distinct=True))
    return qs if is_admin(user) else qs.filter(owner=user)


def source_get(*, user, source_id: int) -> Source:
    _require_user(user)
    source = Source.objects.select_related("owner", "dataset").filter(pk=source_id).first()
    if source is None or not can_manage(user, source):
        raise NotFound("No such source.")
    return source


def analysis_for(*, source: Source, analysis_id: int | None = None) -> Analysis | None:
    """The analysis asked for (404 when it is not this source's), else the newest one."""
    qs = source.analyses.select_related("job")
    if analysis_id is not None:
        a = qs.filter(pk=analysis_id).first()
        if a is None:
            raise NotFound("No such analysis.")
        return a
    return qs.order_by("-created_at", "-id").first()


def analysis_get(*, user, analysis_id: int) -> Analysis:
    _require_user(user, "analysis")
    a = Analysis.objects.select_related("source", "job").filter(pk=analysis_id).first()
    if a is None or not can_manage(user, a.source):
        raise NotFound("No such analysis.")
    return a


def generation_list(*, user, source: Source | None = None) -> QuerySet[Generation]:
    _require_user(user, "generation")
    qs = Generation.objects.select_related("source", "dataset_version", "dataset_version__dataset", "job")
    if source is not None:
        qs = qs.filter(source=source)
    if not is_admin(user):
        qs = qs.filter(source__owner=user)
    return qs.order_by("-created_at", "-id")


def generation_get(*, user, generation_id: int) -> Generation:
    _require_user(user, "generation")
    g = (Generation.objects.select_related("source", "source__owner", "dataset_version", "dataset_version__dataset",
                                           "job", "base").filter(pk=generation_id).first())
    if g is None or not can_manage(user, g.source):
        raise NotFound("No such generation.")
    return g


def active_jobs(source: Source) -> dict:
    return {"analysis": source.analyses.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).first(),
            "generation": source.generations.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).first()}


# -- API shapes ------------------------------------------------------------------------------------------------
def _iso(dt):
    return dt.isoformat() if dt else None


def repo_as_dict(r) -> dict:
    return {"name": r.name, "role": r.role, "url": r.url or None, "commit": r.commit, "branch": r.branch or None,
            "commit_time": r.commit_time or None, "subject": r.subject}


def job_brief(job) -> dict | None:
    if job is None:
        return None
    return {"id": job.pk, "status": job.status, "phase": job.phase, "progress": job.progress or {},
            "error": job.error, "error_code": job.error_code}


def source_as_dict(s: Source) -> dict:
    return {"id": s.pk, "name": s.name, "kind": s.kind, "location": s.location, "archive_name": s.archive_name or None,
            "owner": s.owner.username, "dataset_id": s.dataset_id, "last_commit": s.last_commit or None,
            "scanned_at": _iso(s.scanned_at), "demo": s.demo, "created_at": _iso(s.created_at),
            "repos": [repo_as_dict(r) for r in s.repos.all()],
            "rules": [r.as_rule() for r in s.component_rules.all()]}


def analysis_as_dict(a: Analysis, *, results: bool = True) -> dict:
    out = {"id": a.pk, "source_id": a.source_id, "status": a.status, "commits": a.commits or {}, "error": a.error,
           "created_at": _iso(a.created_at), "finished_at": _iso(a.finished_at), "job": job_brief(a.job)}
    if results:
        out["results"] = a.results or {}
    return out


def generation_as_dict(g: Generation) -> dict:
    v = g.dataset_version
    return {"id": g.pk, "source_id": g.source_id, "status": g.status, "options": g.options or {},
            "estimate": g.estimate or {}, "commits": g.commits or {}, "base_id": g.base_id,
            "dataset_id": v.dataset_id if v else None, "dataset_version_id": v.pk if v else None,
            "version_number": v.number if v else None, "report": g.report or {}, "summary": g.summary or {},
            "error": g.error, "error_code": g.error_code, "created_at": _iso(g.created_at),
            "finished_at": _iso(g.finished_at), "job": job_brief(g.job),
            "bundle_url": f"/api/generations/{g.pk}/bundle" if g.status == JobStatus.SUCCEEDED else None}


# -- charts ----------------------------------------------------------------------------------------------------
def chart_data(totals: dict | None) -> dict:
    """The analysis plots' data: language mix (lines and files per language), complexity histogram,
    components (built-in and rules), churn (commits and lines added / removed per month; busiest files)."""
    t = totals or {}
    langs = t.get("languages") or {}
    comp = t.get("components") or {}
    hist = (t.get("complexity") or {}).get("histogram") or []
    history = t.get("history") or {}
    months = history.get("by_month") or []
    return {
        "languages": {"names": list(langs.keys()), "loc": [v.get("loc", 0) for v in langs.values()],
                      "files": [v.get("files", 0) for v in langs.values()]},
        "complexity": {"buckets": [b["bucket"] for b in hist], "counts": [b.get("count", 0) for b in hist]},
        "components": {"names": list(comp.keys()), "counts": [comp[k] for k in comp]},
        "churn": {"months": [m["month"] for m in months], "commits": [m.get("commits", 0) for m in months],
                  "added": [m.get("added", 0) for m in months], "removed": [m.get("removed", 0) for m in months]},
    }


# -- provenance ------------------------------------------------------------------------------------------------
def example_provenance(*, user, example_id: int) -> dict:
    """An example's provenance and, when the user may open its source, the source lines at its commit:
    {example, provenance, source (or None), lines: [(number, text, in_range)], file_matches: bool | None}."""
    from apps.datasets.models import Example
    from workers.engine import repos as engine

    _require_user(user, "example")
    e = Example.objects.select_related("version", "version__dataset").filter(pk=example_id).first()
    if e is None:
        raise NotFound("No such example.")
    prov = (e.meta or {}).get("provenance") or {}
    out = {"example": e, "provenance": prov, "source": None, "repo": None, "lines": [], "error": "",
           "file_matches": None}
    if not prov:
        out["error"] = "This example has no provenance (it was not generated from a code source)."
        return out
    source = Source.objects.filter(dataset_id=e.version.dataset_id).select_related("owner").first()
    repo = source.repos.filter(name=prov.get("repo")).first() if source is not None else None
    if source is None or repo is None:
        out["error"] = "The code source of this example is no longer registered."
        return out
    if not can_manage(user, source):
        out["error"] = "Only the source's owner or an admin can open its repository."
        return out
    out["source"], out["repo"] = source, repo
    from apps.sources.services.sources import repo_path

    try:
        text = engine.read_text(repo_path(repo), prov.get("commit") or "HEAD", prov.get("path") or e.source_file)
    except engine.RepoError as exc:
        out["error"] = f"The file could not be read at {str(prov.get('commit'))[:10]}: {exc.message}"
        return out
    start, end = int(prov.get("start_line") or 1), int(prov.get("end_line") or prov.get("start_line") or 1)
    lines = text.splitlines()
    lo, hi = max(1, start - 20), min(len(lines), end + 20)
    out["lines"] = [(n, lines[n - 1], start <= n <= end) for n in range(lo, hi + 1)]
    out["range_ok"] = 1 <= start <= end <= max(len(lines), 1)
    blocks = dict(engine.parse_file_blocks(next((m.get("content") or "" for m in reversed(e.messages)
                                                 if m.get("role") == "assistant"), "")))
    path = prov.get("path") or e.source_file
    if path in blocks:
        out["file_matches"] = blocks[path] == text
    return out
