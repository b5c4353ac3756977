"""Generation: run the offline generators over one commit, select up to ``max_examples`` deterministically,
and regenerate incrementally against the manifest of a previous run.

Selection. Each generator's units are ranked by ``sha256(seed | unit key)``; generators take turns
(round-robin) handing over their next unit's examples until ``max_examples`` is reached. A unit's key
holds the blob hashes it reads, so the selection is a pure function of (commit contents, seed, options):
a full run and an incremental run on the same commit select the same examples.

Incremental regeneration. The manifest records, per unit key, the example ids (with category and
complexity) and tasks it produced. On a newer commit every unit whose key is in the previous manifest
is *kept* without running its generator; only units whose inputs changed (or are new) run.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workers.engine.repos.errors import RepoError, check_stop
from workers.engine.repos.files import load_snapshot
from workers.engine.repos.generators import DEFAULT_GENERATORS, REGISTRY
from workers.engine.repos.generators.base import Context, rng_for
from workers.engine.repos.license import detect_license
from workers.engine.repos.sandbox import SandboxLimits
from workers.engine.repos.sources import open_repo

MANIFEST_VERSION = 1


@dataclass
class GenerateOptions:
    include_tests: bool = True        # tests as sources (tests ↔ implementation generators, FIM in tests)
    include_config: bool = False      # configuration files → file-creation examples
    exclude_complex: bool = False     # drop examples rated "complex"
    max_file_bytes: int = 1_000_000   # larger files are skipped unread
    max_answer_chars: int = 40_000    # the longest file (or commit) an answer may carry
    max_answer_lines: int = 800
    max_history: int = 500            # commits scanned by the commit generator
    commit_max_files: int = 4
    per_file: int = 2                 # examples per file and generator (docstring, fim, mutation)
    docs_per_file: int = 8
    test_command: str | None = None   # opt-in: only mutations that make it fail are kept
    test_timeout: float = 60
    max_test_runs: int = 50
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    license: str | None = None        # None: detected from the repository
    system_prompt: str | None = None

    def fingerprint(self) -> dict:
        d = asdict(self)
        d.pop("max_test_runs")
        d.pop("sandbox")
        d.pop("test_timeout")
        return d


@dataclass
class GenerationResult:
    repo: str
    commit: str
    examples: list[dict]
    manifest: dict
    diff: dict
    tasks: list[dict]
    stats: dict
    skipped: dict
    warnings: list[dict]
    test_runs: list[dict]
    duration_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def default_repo_name(info) -> str:
    if info.remote_url:
        name = info.remote_url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        name = name[:-4] if name.endswith(".git") else name
        if name:
            return name
    p = Path(info.path)
    return (p.name[:-4] if p.name.endswith(".git") else p.name) or "repository"


def _score(seed: int, unit_key: str) -> str:
    return hashlib.sha256(f"{seed}|{unit_key}".encode()).hexdigest()


def _usable_manifest(prev: dict | None, *, seed: int, fingerprint: str) -> tuple[dict | None, str | None]:
    if not prev:
        return None, None
    if not isinstance(prev, dict) or prev.get("version") != MANIFEST_VERSION or not isinstance(prev.get("units"), dict):
        return None, "The previous manifest is not one this engine wrote; everything is regenerated."
    if prev.get("seed") != seed:
        return None, "The seed changed; everything is regenerated."
    if prev.get("fingerprint") != fingerprint:
        return None, "The options or generator versions changed; everything is regenerated."
    return prev, None


def generate(repo_path, *, commit: str = "HEAD", generators=DEFAULT_GENERATORS, seed: int = 0,
             max_examples: int | None = None, options: GenerateOptions | None = None,
             previous_manifest: dict | None = None, repo_name: str | None = None, progress=None,
             should_stop=None) -> GenerationResult:
    started = time.monotonic()
    options = options or GenerateOptions()
    names = list(dict.fromkeys(generators or DEFAULT_GENERATORS))
    unknown = [g for g in names if g not in REGISTRY]
    if unknown:
        raise RepoError("invalid_generator", f"Unknown generator(s): {', '.join(unknown)}. "
                        f"Choose from {', '.join(REGISTRY)}.", unknown=unknown)
    if max_examples is not None and max_examples < 1:
        raise RepoError("invalid_option", "max_examples must be at least 1.")
    if not isinstance(seed, int):
        raise RepoError("invalid_option", "The seed must be an integer.")
    info = open_repo(repo_path, commit=commit)
    repo_name = repo_name or default_repo_name(info)
    known = previous_manifest.get("text_files") if isinstance(previous_manifest, dict) else None
    known = {p: b for p, b in known.items() if isinstance(p, str) and isinstance(b, str)} if isinstance(known, dict) else None
    snap = load_snapshot(info.path, info.commit, max_file_bytes=options.max_file_bytes, progress=progress,
                         should_stop=should_stop, known_text=known)
    lic = options.license
    if lic is None:
        found = detect_license(snap.files)
        lic = (found.get("spdx") or found.get("name") or f"see {found['path']}") if found else None
    ctx = Context(snapshot=snap, info=info, repo_name=repo_name, seed=seed, options=options, license=lic)
    fingerprint = hashlib.sha256(json.dumps({
        "options": options.fingerprint(), "repo": repo_name, "license": lic,
        "versions": {g: REGISTRY[g].version for g in names}}, sort_keys=True).encode()).hexdigest()[:24]
    ctx.fingerprint = fingerprint
    prev, why = _usable_manifest(previous_manifest, seed=seed, fingerprint=fingerprint)
    if why:
        ctx.warnings.append({"code": "previous_manifest_ignored", "message": why})
    prev_units: dict = prev["units"] if prev else {}
    # the diff is against the previous version even when its units cannot be reused
    raw_selected = previous_manifest.get("selected") if isinstance(previous_manifest, dict) else None
    prev_selected = {i for i in raw_selected if isinstance(i, str)} if isinstance(raw_selected, list) else set()
    prev_by_gk = {(u["g"], u["k"]): key for key, u in prev_units.items()}

    try:
        # 1. units, ranked per generator
        queues: dict[str, deque] = {}
        total_units = 0
        for g in names:
            check_stop(should_stop)
            units = REGISTRY[g].units(ctx)
            keyed = sorted(((ctx.unit_key(u), u) for u in units), key=lambda t: _score(seed, t[0]))
            queues[g] = deque(keyed)
            total_units += len(keyed)
        # 2. round-robin until enough
        processed: dict[str, dict] = {}      # unit key -> manifest entry
        produced: dict[str, dict] = {}       # example id -> example (produced in this run)
        units_by_key: dict = {}
        skipped: Counter = Counter()
        order: list[str] = []                 # selected ids in selection order
        done = 0
        if progress:
            progress("generate", 0, total_units)

        def run_unit(g, ukey, unit) -> dict:
            out = REGISTRY[g].produce(ctx, unit, rng_for(ukey))
            skipped.update(out.skipped)
            for ex in out.examples:
                produced[ex["meta"]["example_id"]] = ex
            return {"g": g, "k": unit.key, "ids": [ex["meta"]["example_id"] for ex in out.examples],
                    "cat": [ex["category"] for ex in out.examples], "cx": [ex["meta"]["complexity"] for ex in out.examples],
                    "tasks": out.tasks}

        active = [g for g in names if queues[g]]
        while active and (max_examples is None or len(order) < max_examples):
            for g in list(active):
                if not queues[g]:
                    active.remove(g)
                    continue
                ukey, unit = queues[g].popleft()
                units_by_key[ukey] = (g, unit)
                entry = prev_units.get(ukey)
                if entry is None:
                    entry = run_unit(g, ukey, unit)
                processed[ukey] = entry
                order.extend(entry["ids"])
                done += 1
                if done % 20 == 0:
                    check_stop(should_stop)
                    if progress:
                        progress("generate", done, total_units)
                if max_examples is not None and len(order) >= max_examples:
                    break
        if progress:
            progress("generate", done, total_units)
        selected = order[:max_examples] if max_examples is not None else order
        selected_set = set(selected)
        # 3. kept units whose selected examples were not in the previous version: produce their content again
        for ukey, entry in processed.items():
            if ukey in prev_units and any(i in selected_set and i not in prev_selected and i not in produced
                                          for i in entry["ids"]):
                g, unit = units_by_key[ukey]
                run_unit(g, ukey, unit)
    finally:
        ctx.close()
        text_files = snap.text_blobs()
        snap.close()

    # 4. diff against the previous version: a unit whose inputs changed replaces the old unit of the same
    #    generator and key; its new examples are "changed" (paired with the old ones they replace, in order)
    replaces: dict[str, str] = {}
    for ukey, entry in processed.items():
        old_key = prev_by_gk.get((entry["g"], entry["k"])) if ukey not in prev_units else None
        if old_key is None:
            continue
        olds = [i for i in prev_units[old_key]["ids"] if i in prev_selected and i not in selected_set]
        news = [i for i in entry["ids"] if i in selected_set and i not in prev_selected]
        replaces.update(zip(news, olds))
    new_ids = [i for i in selected if i not in prev_selected]
    diff = {"added": [i for i in new_ids if i not in replaces],
            "changed": [i for i in new_ids if i in replaces],
            "replaces": replaces,
            "kept": [i for i in selected if i in prev_selected],
            "removed": sorted(i for i in prev_selected if i not in selected_set)}  # replaced ones included
    examples = [produced[i] for i in new_ids if i in produced]

    # 5. statistics over the whole selection (kept examples included, from the manifest)
    meta_of = {}
    for entry in processed.values():
        for i, cat, cx in zip(entry["ids"], entry["cat"], entry["cx"]):
            meta_of[i] = (entry["g"], cat, cx)
    by_gen, by_cat, by_cx = Counter(), Counter(), Counter()
    for i in selected:
        g, cat, cx = meta_of[i]
        by_gen[g] += 1
        by_cat[cat] += 1
        by_cx[cx] += 1
    tasks = [t for entry in processed.values() for t in entry["tasks"]]
    tasks.sort(key=lambda t: (t["category"], t["provenance"]["path"], t["provenance"]["start_line"], t["id"]))
    manifest = {"version": MANIFEST_VERSION, "seed": seed, "commit": info.commit, "fingerprint": fingerprint,
                "repo": repo_name, "units": processed, "selected": selected, "text_files": text_files}
    all_skipped = dict(sorted((Counter(snap.skipped) + skipped).items()))
    stats = {"examples": len(selected), "by_generator": dict(by_gen), "by_category": dict(by_cat),
             "by_complexity": dict(by_cx), "units_total": total_units, "units_processed": len(processed),
             "units_regenerated": sum(1 for k in processed if k not in prev_units), "tasks": len(tasks),
             "tasks_by_category": dict(Counter(t["category"] for t in tasks)), "files": len(snap.files),
             "license": lic, "repo": repo_name}
    return GenerationResult(repo=repo_name, commit=info.commit, examples=examples, manifest=manifest, diff=diff,
                            tasks=tasks, stats=stats, skipped=all_skipped, warnings=ctx.warnings,
                            test_runs=ctx.test_runs, duration_s=round(time.monotonic() - started, 3))
