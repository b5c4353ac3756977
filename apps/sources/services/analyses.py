"""Analyses: a job ("source.analyse", apps/sources/jobs.py) that re-scans a source (a clone fetches new
commits) and runs the engine's analysis on each repository: files per language, lines of code, complexity per
function (lizard), components (built-in + the source's rules), commit history, the licence. Each file's figures
are cached by git blob under ARTIFACT_ROOT/cache/repo-analysis (`analysis_cache_dir`), so a re-analysis after a
commit analyses only the files that changed.

Contract: `analysis_start` creates the Analysis and its job and sends it to the worker after commit (or runs
it here with inline=True: the CLI); `analysis_process` (the actor's body; idempotent, a re-run starts over)
claims the job, beats a heartbeat, reports phase and progress (throttled by the lifecycle), honours a cancel
between files, and finishes the job exactly once: succeeded with the results, or failed with the engine's
clear message (`E_<CODE>`). `merge_results` adds the repositories of a source up for the page's plots.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.core.exceptions import Conflict
from apps.core.jobs import services as job_services
from apps.core.liveness import worker_id
from apps.sources.models import Analysis, JobStatus, Source
from apps.sources.services.sources import ACTIVE, managed_source, repo_path, scan_repos
from workers.engine import repos as engine

log = logging.getLogger(__name__)


def analysis_cache_dir() -> Path:
    """The engine's per-blob cache of file figures (workers/engine/repos/analysis_cache.py), shared by every
    source and process: a re-analysis after a commit re-reads and re-analyses only the changed files."""
    return Path(settings.ARTIFACT_ROOT) / "cache" / "repo-analysis"


def analysis_start(*, user, source_id: int, inline: bool = False) -> Analysis:
    with transaction.atomic():
        source = managed_source(user, source_id, lock=True)
        if source.analyses.filter(status__in=ACTIVE).exists():
            raise Conflict("An analysis of this source is already running.")
        analysis = Analysis.objects.create(source=source, created_by=user, rescan=True)
        analysis.job = job_services.job_create(kind="source.analyse", owner=user, target=analysis,
                                               args=[analysis.pk], send=not inline)
        analysis.save(update_fields=["job"])
    if inline:
        return analysis_process(analysis_id=analysis.pk)
    return analysis


class _Reporter:
    """The engine's progress(phase, done, total) → the job's phase and progress; should_stop → a cancel."""

    def __init__(self, job_id: int, *, prefix: str = ""):
        self.job_id, self.prefix, self.phase = job_id, prefix, None

    def progress(self, phase: str, done: int, total: int | None) -> None:
        top = phase.split(":", 1)[0]
        if top != self.phase:
            self.phase = top
            job_services.job_set_phase(job_id=self.job_id, phase=top)
        job_services.job_progress(job_id=self.job_id, current=done, total=total, unit=_UNITS.get(top, "items"),
                                  message=f"{self.prefix}{phase}")

    def should_stop(self) -> bool:
        return job_services.job_should_stop(job_id=self.job_id)


_UNITS = {"clone": "objects", "files": "files", "complexity": "files", "history": "commits", "generate": "units",
          "tests": "test runs", "teacher": "examples", "bundle": "files", "scan": "repositories",
          "saving": "examples"}


def analysis_process(*, analysis_id: int) -> Analysis:
    analysis = Analysis.objects.select_related("source").filter(pk=analysis_id).first()
    if analysis is None or analysis.job_id is None:
        return analysis
    holder = worker_id()
    if job_services.job_claim(job_id=analysis.job_id, holder=holder) is None:
        return Analysis.objects.get(pk=analysis_id)
    source: Source = analysis.source
    job_id = analysis.job_id
    try:
        with job_services.job_heartbeat_thread(job_id=job_id, holder=holder):
            scanned = scan_repos(source, fetch=True)
            rules = [r.as_rule() for r in source.component_rules.all()]
            per_repo = []
            repos = list(source.repos.all())
            for i, repo in enumerate(repos):
                rep = _Reporter(job_id, prefix=f"{repo.name} ({i + 1}/{len(repos)}): " if len(repos) > 1 else "")
                result = engine.analyze(repo_path(repo), commit=repo.commit or "HEAD", rules=rules,
                                        progress=rep.progress, should_stop=rep.should_stop,
                                        cache_dir=analysis_cache_dir())
                per_repo.append({**result, "name": repo.name, "role": repo.role})
            results = {"repos": per_repo, "totals": merge_results(per_repo), "notes": scanned["notes"]}
        job_services.job_finish(job_id=job_id, status="succeeded",
                                result={"results": results, "commits": scanned["commits"]})
    except engine.RepoError as exc:
        status = "cancelled" if exc.code == "cancelled" else "failed"
        job_services.job_finish(job_id=job_id, status=status, error=exc.message if status == "failed" else "",
                                error_code=f"E_{exc.code.upper()}"[:40] if status == "failed" else "")
    except Exception as exc:  # never leave an analysis running: the traceback goes to the log only
        log.exception("analysis %s failed", analysis_id)
        job_services.job_finish(job_id=job_id, status="failed", error_code="E_ANALYSIS_FAILED",
                                error=f"Analysis failed: {type(exc).__name__}: {exc}")
    return Analysis.objects.select_related("source").get(pk=analysis_id)


def latest_analysis(source: Source) -> Analysis | None:
    return source.analyses.filter(status=JobStatus.SUCCEEDED).order_by("-created_at", "-id").first()


# -- totals over a source's repositories ---------------------------------------------------------------------
def merge_results(per_repo: list[dict]) -> dict:
    """One analysis for several repositories (core + plugins): sums, a weighted mean, merged histograms."""
    if len(per_repo) == 1:
        return {k: v for k, v in per_repo[0].items() if k not in ("name", "role")}
    languages: dict[str, Counter] = defaultdict(Counter)
    skipped, components, buckets = Counter(), Counter(), Counter()
    component_files: dict[str, list[str]] = defaultdict(list)
    months: dict[str, Counter] = defaultdict(Counter)
    authors: Counter = Counter()
    fn_total, weighted, cmax, top, churn = 0, 0.0, 0, [], []
    hist_first, hist_last, commits, n_authors = [], [], 0, 0
    bucket_order: list[str] = []
    for r in per_repo:
        name = r.get("name", "")
        for lang, d in (r.get("languages") or {}).items():
            languages[lang].update({k: v for k, v in d.items() if isinstance(v, (int, float))})
        skipped.update(r.get("skipped") or {})
        components.update({k: v for k, v in (r.get("components") or {}).items() if isinstance(v, (int, float))})
        for rule, paths in (r.get("component_files") or {}).items():
            component_files[rule] += [f"{name}/{p}" for p in paths]
        c = r.get("complexity") or {}
        fn_total += c.get("functions") or 0
        weighted += (c.get("mean") or 0) * (c.get("functions") or 0)
        cmax = max(cmax, c.get("max") or 0)
        for b in c.get("histogram") or []:
            if b["bucket"] not in bucket_order:
                bucket_order.append(b["bucket"])
            buckets[b["bucket"]] += b.get("count") or 0
        top += [{**t, "repo": name} for t in c.get("top") or []]
        h = r.get("history") or {}
        commits += h.get("commits") or 0
        n_authors += h.get("authors") or 0
        if h.get("first"):
            hist_first.append(h["first"])
        if h.get("last"):
            hist_last.append(h["last"])
        for m in h.get("by_month") or []:
            months[m["month"]].update({k: v for k, v in m.items() if k != "month"})
        churn += [{**x, "path": f"{name}/{x['path']}"} for x in h.get("churn") or []]
        for a in h.get("top_authors") or []:
            authors[a["name"]] += a.get("commits") or 0
    return {
        "files_total": sum(r.get("files_total") or 0 for r in per_repo),
        "loc_total": sum(r.get("loc_total") or 0 for r in per_repo),
        "languages": {k: dict(v) for k, v in sorted(languages.items(), key=lambda kv: -kv[1].get("loc", 0))},
        "skipped": dict(skipped),
        "complexity": {"functions": fn_total, "mean": round(weighted / fn_total, 2) if fn_total else 0.0, "max": cmax,
                       "histogram": [{"bucket": b, "count": buckets[b]} for b in bucket_order],
                       "top": sorted(top, key=lambda t: -(t.get("ccn") or 0))[:20]},
        "components": dict(components),
        "component_files": dict(component_files),
        "history": {"commits": commits, "authors": n_authors, "first": min(hist_first) if hist_first else None,
                    "last": max(hist_last) if hist_last else None,
                    "by_month": [{"month": m, **dict(v)} for m, v in sorted(months.items())],
                    "churn": sorted(churn, key=lambda x: -((x.get("added") or 0) + (x.get("removed") or 0)))[:50],
                    "top_authors": [{"name": n, "commits": c} for n, c in authors.most_common(10)]},
        "license": next((r.get("license") for r in per_repo if r.get("license")), None),
        "licenses": {r.get("name", ""): r.get("license") for r in per_repo},
        "duration_s": round(sum(r.get("duration_s") or 0 for r in per_repo), 3),
    }
