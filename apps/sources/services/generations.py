"""Generations: training scenarios from a source's repositories become a new version of the source's dataset.

Contract: `generation_start` checks the options (field errors), refuses a second active generation of the same
source (409), picks the base — the source's last succeeded generation whose version is still ready — and
creates the Generation and its job ("source.generate", apps/sources/jobs.py), sent to the worker after commit
(inline=True runs it here: the CLI). A repository's test command runs only when the user opted in, and only
where `generation_process` runs: the worker or the CLI, never a web request.

`generation_process` (idempotent and resumable) claims the job and:
1. scan — records each repository's commit (a clone fetches first); a resumed run keeps the first scan's;
2. generate — the engine's generators per repository, incrementally against the base's manifest (only units
   whose blobs changed are regenerated); each repository's output is checkpointed to
   ARTIFACT_ROOT/generations/<id>/repo-<n>.json, so a resumed run skips finished repositories;
3. teacher (optional) — rewrites the new examples' queries and plans, rate-limited, one checkpoint line per
   example (teacher.jsonl): a resumed run continues from the next example;
4. saving — the base version's kept examples plus the new ones are validated like any upload and written to a
   new version (its job is this job; it turns ready when the job succeeds), the bundle (Together JSONL,
   scenarios JSON, generation-statistics.json, generation-report.json, by-category/) is written and zipped.
   A kept example is read once from the base version's row and carried over as the datasets' derived versions
   do: its stored token counts, checks and MinHash signature are reused and its row is copied in the database,
   so a regeneration after a small commit costs little more than its new examples. The tokenizer starts
   loading on a background thread when the job starts, overlapping its seconds with the scan and the
   generators (`generation_prefetch` starts it earlier still: the CLI, before the analysis).
Any failure or a cancel finishes the job once; the job's hook deletes the unfinished version (and a dataset it
created), so a failed generation leaves no version behind. Engine errors keep their code (`E_<CODE>`).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import zipfile
from pathlib import Path

import orjson
from django.conf import settings
from django.db import transaction

from apps.core.exceptions import Conflict, NotFound
from apps.core.jobs import services as job_services
from apps.core.liveness import worker_id
from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.validation.pipeline import Carried
from apps.datasets.validation.tokens import counter_for_base_model, counter_name, counter_prefetch
from apps.sources import conf
from apps.sources.models import Generation, JobStatus, Source
from apps.sources.services import options as opt
from apps.sources.services.analyses import _Reporter, latest_analysis
from apps.sources.services.sources import ACTIVE, can_manage, managed_source, repo_path, scan_repos
from apps.sources.services.teacher import teacher_session
from workers.engine import repos as engine

log = logging.getLogger(__name__)

FORMAT = "code-scenarios"
BUNDLE_ZIP = "bundle.zip"


class GenerationFailed(Exception):
    def __init__(self, message: str, code: str = "E_GENERATION_FAILED"):
        super().__init__(message)
        self.message, self.code = message, code


def work_dir(generation_id: int) -> Path:
    return conf.generations_root() / str(generation_id)


def bundle_zip_path(generation: Generation) -> Path | None:
    p = work_dir(generation.pk) / BUNDLE_ZIP
    return p if p.is_file() else None


# -- start ----------------------------------------------------------------------------------------------------
def base_generation(source: Source) -> Generation | None:
    """The last succeeded generation of the source whose version still exists and is ready."""
    return (source.generations.filter(status=JobStatus.SUCCEEDED, dataset_version__status=DatasetVersion.Status.READY)
            .select_related("dataset_version").order_by("-created_at", "-id").first())


def generation_estimate(*, user, source_id: int, options: dict | None) -> dict:
    source = managed_source(user, source_id)
    parsed = opt.parse_options(options)
    analysis = latest_analysis(source)
    return {"options": parsed, "estimate": opt.estimate(analysis_totals=(analysis.results or {}).get("totals")
                                                        if analysis else None, options=parsed),
            "analysis_id": analysis.pk if analysis else None}


def _base_model_id(base: Generation | None) -> str | None:
    """The base model the next version counts tokens with: the base version's (see `_save`)."""
    version = base.dataset_version if base is not None else None
    return (version.base_model_id if version is not None else "") or None


def generation_prefetch(*, source: Source) -> None:
    """Start loading the tokenizer that the next generation of `source` will count tokens with, on a background
    thread (apps.datasets.validation.tokens.counter_prefetch): the CLI overlaps it with the analysis."""
    counter_prefetch(_base_model_id(base_generation(source)))


def generation_start(*, user, source_id: int, options: dict | None = None, inline: bool = False) -> Generation:
    parsed = opt.parse_options(options)
    with transaction.atomic():
        source = managed_source(user, source_id, lock=True)
        if source.generations.filter(status__in=ACTIVE).exists():
            raise Conflict("A generation of this source is already running; wait for it or cancel it.")
        if not source.repos.exists():
            raise Conflict("This source has no repository.")
        analysis = latest_analysis(source)
        est = opt.estimate(analysis_totals=(analysis.results or {}).get("totals") if analysis else None,
                           options=parsed)
        gen = Generation.objects.create(source=source, analysis=analysis, options=parsed, estimate=est,
                                        base=base_generation(source), created_by=user)
        gen.job = job_services.job_create(kind="source.generate", owner=user, target=gen, args=[gen.pk],
                                          send=not inline)
        gen.save(update_fields=["job"])
    if inline:
        return generation_process(generation_id=gen.pk)
    return gen


def generation_get_for(*, user, generation_id: int) -> Generation:
    gen = Generation.objects.select_related("source", "dataset_version", "job").filter(pk=generation_id).first()
    if gen is None or not can_manage(user, gen.source):
        raise NotFound("No such generation.")
    return gen


# -- process --------------------------------------------------------------------------------------------------
def _write_json(path: Path, data) -> None:
    try:  # orjson: a checkpoint holds a whole repository's manifest; the json module only for what orjson refuses
        raw = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        raw = json.dumps(data, ensure_ascii=False).encode()
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, path)


def _budgets(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _engine_options(opts: dict):
    kwargs = {"include_tests": opts["include_tests"], "include_config": opts["include_config"],
              "exclude_complex": opts["exclude_complex"]}
    if opts.get("run_tests") and opts.get("test_command"):
        kwargs.update(test_command=opts["test_command"], test_timeout=opts["test_timeout"],
                      max_test_runs=opts["max_test_runs"])
    return engine.GenerateOptions(**kwargs)


def _result_dict(res, commit: str) -> dict:
    keep = ("examples", "manifest", "diff", "tasks", "stats", "skipped", "warnings", "test_runs", "duration_s")
    if isinstance(res, dict):
        return {"commit": commit, **{k: res.get(k) for k in keep}}
    # the engine's GenerationResult holds plain lists and dicts: no deep copy (dataclasses.asdict) needed
    return {"commit": commit, **{k: getattr(res, k, None) for k in keep}}


def generation_process(*, generation_id: int) -> Generation:
    gen = Generation.objects.select_related("source", "base", "base__dataset_version").filter(pk=generation_id).first()
    if gen is None or gen.job_id is None:
        return gen
    holder = worker_id()
    if job_services.job_claim(job_id=gen.job_id, holder=holder) is None:
        return Generation.objects.get(pk=generation_id)
    job_id = gen.job_id
    started = time.monotonic()
    try:
        with job_services.job_heartbeat_thread(job_id=job_id, holder=holder):
            counter_prefetch(_base_model_id(gen.base))  # loads while the scan and the generators run
            _run(gen, job_id, started)
    except engine.RepoError as exc:
        if exc.code == "cancelled":
            job_services.job_finish(job_id=job_id, status="cancelled",
                                    result={"message": "The generation was cancelled; no version was made."})
        else:
            job_services.job_finish(job_id=job_id, status="failed", error=exc.message,
                                    error_code=f"E_{exc.code.upper()}"[:40])
    except GenerationFailed as exc:
        job_services.job_finish(job_id=job_id, status="failed", error=exc.message, error_code=exc.code)
    except Exception as exc:  # never leave a generation running or a half-made version: the job's hook deletes it
        log.exception("generation %s failed", generation_id)
        job_services.job_finish(job_id=job_id, status="failed", error_code="E_GENERATION_FAILED",
                                error=f"Generation failed: {type(exc).__name__}: {exc}")
    return Generation.objects.select_related("source", "dataset_version").get(pk=generation_id)


def _run(gen: Generation, job_id: int, started: float) -> None:
    source = gen.source
    opts = gen.options
    folder = work_dir(gen.pk)
    folder.mkdir(parents=True, exist_ok=True)
    reporter = _Reporter(job_id)
    # 1. scan (a resumed run keeps the commits it started from, so its checkpoints stay valid)
    commits = gen.commits or {}
    notes: list[str] = []
    if not commits:
        job_services.job_set_phase(job_id=job_id, phase="scan")
        scanned = scan_repos(source, fetch=True)
        commits, notes = scanned["commits"], scanned["notes"]
        Generation.objects.filter(pk=gen.pk).update(commits=commits)
    repos = list(source.repos.all())
    base = gen.base
    base_manifest = (base.manifest or {}) if base is not None else {}
    # 2. generate, per repository, checkpointed
    per_repo: list[dict] = []
    budgets = _budgets(opts["max_examples"], len(repos))
    for i, repo in enumerate(repos):
        ck = folder / f"repo-{i}.json"
        data = json.loads(ck.read_text(encoding="utf-8")) if ck.is_file() else None
        if data is None or data.get("commit") != commits.get(repo.name):
            reporter.prefix = f"{repo.name} ({i + 1}/{len(repos)}): " if len(repos) > 1 else ""
            res = engine.generate(repo_path(repo), commit=commits[repo.name], generators=opts["generators"],
                                  seed=opts["seed"], max_examples=budgets[i] or None,
                                  options=_engine_options(opts), previous_manifest=base_manifest.get(repo.name),
                                  repo_name=repo.name, progress=reporter.progress, should_stop=reporter.should_stop)
            data = _result_dict(res, commits[repo.name])
            _write_json(ck, data)
        per_repo.append({"repo": repo, **data})
    new_examples = [ex for d in per_repo for ex in d["examples"] or []]
    # 3. teacher (optional), resumable per example
    teacher_summary = None
    if opts.get("teacher") and new_examples:
        job_services.job_set_phase(job_id=job_id, phase="teacher")
        new_examples, teacher_summary = _teach(gen, new_examples, folder, reporter)
    # 4. saving
    job_services.job_set_phase(job_id=job_id, phase="saving")
    kept_ids = {i for d in per_repo for i in ((d.get("diff") or {}).get("kept") or [])}
    kept = _kept_examples(base, kept_ids) if base is not None and kept_ids else []
    # (the example, what validation gets): a kept example is the base version's row, carried over unchanged
    # (its stored token counts, checks and signature are reused and its row is copied in the database)
    entries = [(c.example, c) for c in kept] + [(ex, ex) for ex in new_examples]
    if not entries:
        raise GenerationFailed(_nothing_message(per_repo), code="E_NO_EXAMPLES")
    order = {r.name: r.position for r in repos}

    def position(entry):
        ex = entry[0]
        meta = ex.get("meta") or {}
        return (order.get((meta.get("provenance") or {}).get("repo"), 0), ex.get("source_file") or "",
                ex.get("source_line") or 0, meta.get("example_id") or "")

    entries.sort(key=position)
    summary = _summary(per_repo, kept=len(kept), new=len(new_examples), notes=notes + opts.get("notes", []),
                       teacher=teacher_summary)
    _save(gen, source, base, entries, per_repo, summary, started, reporter)


def _nothing_message(per_repo: list[dict]) -> str:
    skipped: dict[str, int] = {}
    for d in per_repo:
        for k, v in (d.get("skipped") or {}).items():
            if isinstance(v, int):
                skipped[k] = skipped.get(k, 0) + v
    extra = f" (skipped: {', '.join(f'{v} {k}' for k, v in skipped.items())})" if skipped else ""
    warnings = [w.get("message") or w.get("code") for d in per_repo for w in (d.get("warnings") or [])]
    if warnings:  # e.g. the test command fails (or hangs) on the unchanged commit
        return "The generators made no scenarios from this source" + extra + ". " + " ".join(warnings[:3])
    return ("The generators made no scenarios from this source" + extra +
            ": it may hold no supported code, or every function was excluded by the options.")


def _teach(gen: Generation, examples: list[dict], folder: Path, reporter) -> tuple[list[dict], dict]:
    path = folder / "teacher.jsonl"
    done: list[dict] = []
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        done.append(json.loads(line))
                    except ValueError:  # a line cut by the crash: redo that example
                        break
        with open(path, "w", encoding="utf-8") as fh:  # drop a cut last line
            fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in done)
    cursor = min(len(done), len(examples))
    with teacher_session(gen) as config, open(path, "a", encoding="utf-8") as out:
        def on_item(index, example):
            out.write(json.dumps(example, ensure_ascii=False) + "\n")
            out.flush()

        result = engine.enrich(examples, config, cursor=cursor, on_item=on_item, progress=reporter.progress,
                               should_stop=reporter.should_stop)
    enriched = done[:cursor] + list(result.examples)  # the engine returns the examples from the cursor on
    summary = {"model": config.model, "rewritten": result.rewritten + sum(
        1 for e in done[:cursor] if ((e.get("meta") or {}).get("provenance") or {}).get("teacher_model")),
        "failed": result.failed, "errors": list(result.errors)[:20], "resumed_at": cursor}
    return enriched, summary


def _kept_examples(base: Generation, ids: set[str]) -> list[Carried]:
    """The base version's examples still valid (by `meta.example_id`), each read once, as `Carried` examples
    with the stored figures the new version may reuse (apps.datasets.services.versions.carried_where)."""
    from apps.datasets.services.versions import carried_where

    version = base.dataset_version
    return list(carried_where(version, counter_name=counter_name(_base_model_id(base)), target=version.target,
                              meta__example_id__in=sorted(ids)))


def _summary(per_repo: list[dict], *, kept: int, new: int, notes: list[str], teacher: dict | None) -> dict:
    out = {"added": 0, "changed": 0, "removed": 0, "kept": kept, "new_examples": new, "total": kept + new,
           "by_repo": {}, "skipped": {}, "test_runs": [], "tasks": 0, "notes": notes, "teacher": teacher}
    for d in per_repo:
        diff = d.get("diff") or {}
        counts = {k: len(diff.get(k) or []) for k in ("added", "changed", "removed", "kept")}
        # the engine's `removed` holds the replaced examples too: count only those gone without a replacement
        counts["removed"] = max(0, counts["removed"] - counts["changed"])
        for k in ("added", "changed", "removed"):
            out[k] += counts[k]
        out["by_repo"][d["repo"].name] = {"commit": d.get("commit"), "examples": len(d.get("examples") or []),
                                          **counts, "duration_s": d.get("duration_s")}
        for k, v in (d.get("skipped") or {}).items():
            if isinstance(v, int):
                out["skipped"][k] = out["skipped"].get(k, 0) + v
        out["test_runs"] += [{**t, "repo": d["repo"].name} for t in (d.get("test_runs") or [])][:200]
        out["notes"] += [f"{d['repo'].name}: {w.get('message') or w.get('code')}" for w in (d.get("warnings") or [])]
        out["tasks"] += len(d.get("tasks") or [])
    return out


def _version_note(source: Source, summary: dict, commits: dict) -> str:
    core = next(iter(commits.values()), "")
    parts = [f"{summary['added']} added", f"{summary['changed']} changed", f"{summary['removed']} removed",
             f"{summary['kept']} kept"]
    return f"Generated from {source.name}@{core[:10]}: " + ", ".join(parts)


def _save(gen: Generation, source: Source, base: Generation | None, entries: list[tuple], per_repo: list[dict],
          summary: dict, started: float, reporter) -> None:
    from apps.datasets.services.versions import _finish, _new_version, _writer
    from apps.datasets.validation.pipeline import validate_examples

    final = [ex for ex, _ in entries]
    gen.refresh_from_db()
    parent = base.dataset_version if base is not None else None
    with transaction.atomic():
        src = Source.objects.select_for_update().get(pk=source.pk)
        dataset = src.dataset
        if dataset is None:
            dataset = Dataset.objects.create(
                name=f"{src.name} scenarios"[:200], owner=src.owner,
                description=f"Training scenarios generated from the code source “{src.name}” (sources app).")
            src.dataset = dataset
            src.save(update_fields=["dataset", "updated_at"])
        if parent is not None and parent.dataset_id != dataset.pk:
            parent = None
        version = _new_version(user=gen.created_by, dataset=dataset, parent=parent,
                               status=DatasetVersion.Status.IMPORTING,
                               format=FORMAT, source_name=f"{src.name}@{(src.last_commit or '')[:10]}"[:255],
                               target=parent.target if parent else "local",
                               split_ratio=parent.split_ratio if parent else settings.HUB_VALIDATION_SPLIT,
                               base_model_id=parent.base_model_id if parent else "",
                               note=_version_note(src, summary, gen.commits)[:500],
                               progress={"stage": "validating", "examples": 0, "total": len(final)}, job_id=gen.job_id)
    counter = counter_for_base_model(version.base_model_id or None)
    on_batch, flush = _writer(version)
    written = [0]

    def batch(annotated):
        on_batch(annotated)
        written[0] += len(annotated)
        reporter.progress("saving", written[0], len(final))
        if reporter.should_stop():
            raise engine.RepoError("cancelled", "Stopped on request.")

    items = [item for _, item in entries]
    if parent is None and any(isinstance(i, Carried) for i in items):
        items = [ex for ex, _ in entries]  # the base version moved to another dataset: validate them afresh
    result = validate_examples(iter(items), fmt=FORMAT, target=version.target, counter=counter,
                               split_ratio=version.split_ratio, base_model_id=version.base_model_id or None,
                               on_batch=batch)
    flush()
    tokens = ((result.stats or {}).get("tokens") or {}).get("total")
    report = _write_bundle(gen, final, per_repo, summary, started, version, tokens_total=tokens)
    Generation.objects.filter(pk=gen.pk).update(
        manifest={d["repo"].name: d.get("manifest") or {} for d in per_repo}, report=report, summary=summary)
    _finish(version, result)  # ready through this job (apps/sources/jobs.py); failed → the version is deleted


def _write_bundle(gen: Generation, final: list[dict], per_repo: list[dict], summary: dict, started: float,
                  version: DatasetVersion, tokens_total: int | None = None) -> dict:
    results = (gen.analysis.results or {}) if gen.analysis_id and gen.analysis else {}
    analyses = [a for a in results.get("repos") or [] if isinstance(a, dict)] or None
    tasks = [t for d in per_repo for t in (d.get("tasks") or [])]
    metadata = {"source": gen.source.name, "source_id": gen.source_id, "generation_id": gen.pk,
                "dataset_id": version.dataset_id, "dataset_version_id": version.pk, "version_number": version.number,
                "commits": gen.commits, "seed": gen.options.get("seed"), "generators": gen.options.get("generators")}
    elapsed = time.monotonic() - started
    files = engine.bundle(final, analysis=analyses, processing_time_s=elapsed, tasks=tasks or None,
                          skipped=summary["skipped"] or None, metadata=metadata,
                          price_per_million_tokens=getattr(settings, "TOGETHER_PRICE_PER_MTOK", 0.48))
    report = json.loads(files["generation-report.json"])
    report.update({"dataset_version_id": version.pk, "dataset_id": version.dataset_id,
                   "version_number": version.number, "generation_id": gen.pk, "source_id": gen.source_id,
                   "commits": gen.commits, "incremental": {k: summary[k] for k in ("added", "changed", "removed",
                                                                                   "kept")}})
    if tokens_total:  # the base model's tokenizer and chat template, as the dataset page counts them
        report["tokensWithChatTemplate"] = tokens_total
    files["generation-report.json"] = json.dumps(report, indent=2, ensure_ascii=False).encode()
    if tasks:
        files.setdefault("tasks.json", json.dumps(tasks, indent=2, ensure_ascii=False).encode())
    folder = work_dir(gen.pk)
    bundle_dir = folder / "bundle"
    shutil.rmtree(bundle_dir, ignore_errors=True)
    engine.write_bundle(bundle_dir, files)
    tmp = folder / (BUNDLE_ZIP + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, content in sorted(files.items()):
            zf.writestr(name, content)
    os.replace(tmp, folder / BUNDLE_ZIP)
    return report
