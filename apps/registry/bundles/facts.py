"""What a bundle says, read once from the database and the disk as plain data (`bundle_facts`), so rendering
(render.py) and writing (build.py) touch no ORM.

Contract:
- `export_files(export) -> [(absolute path, arcname)]`: the export's file, or every file of its folder, under
  `model/` (sorted; symlinks followed only inside the folder). BundleError when the files are gone.
- `bundle_facts(bundle) -> dict` with keys: bundle, export, version, base, lineage, metrics, config, files,
  gguf, chat_template, chatml, tools, tools_md, openai_tools, hub_base_url.
- `tool_registry()` -> (export dict, markdown): the tool registry's own `tool_registry_export()` /
  `tool_docs_markdown()` (apps.registry.tools); only where that module is missing, the Tool rows.
- `base_license(base)` reads the base folder's README front matter / config files; SmolLM2 is Apache-2.0;
  otherwise "see base model".
"""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

from django.conf import settings
from django.db.models import Count

UNKNOWN_LICENSE = "see base model"
KNOWN_LICENSES = (("smollm2", "Apache-2.0"), ("smollm", "Apache-2.0"), ("qwen2.5", "Apache-2.0"))
HF_IDS = (("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
          ("smollm2-360m-instruct", "HuggingFaceTB/SmolLM2-360M-Instruct"),
          ("smollm2-1.7b-instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct"))
_FRONT_LICENSE = re.compile(r"^license:\s*['\"]?([\w.\-+ ]+?)['\"]?\s*$", re.M)


class BundleError(Exception):
    """A bundle cannot be built; `message` is shown to the user, `code` becomes the job's E_<CODE>."""

    def __init__(self, message: str, code: str = "bundle_failed"):
        super().__init__(message)
        self.message, self.code = message, code


def artifact_path(relative: str) -> Path:
    return Path(settings.ARTIFACT_ROOT) / relative


def export_files(export) -> list[tuple[Path, str]]:
    if not export.path:
        raise BundleError("The export has no files recorded.", "export_missing")
    root = artifact_path(export.path)
    if root.is_file():
        return [(root, f"model/{root.name}")]
    if not root.is_dir():
        raise BundleError("The export's files are no longer on disk; export the version again.", "export_missing")
    out, top = [], root.resolve()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.resolve().is_relative_to(top) and not path.name.endswith((".partial", ".tmp")):
            out.append((path, "model/" + path.relative_to(root).as_posix()))
    if not out:
        raise BundleError("The export's folder is empty; export the version again.", "export_missing")
    return out


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def chat_template(folders: list[Path]) -> str | None:
    """The chat template of the first folder that has one (chat_template.jinja or tokenizer_config.json)."""
    for folder in folders:
        jinja = Path(folder) / "chat_template.jinja"
        if jinja.is_file():
            try:
                return jinja.read_text()
            except OSError:
                pass
        template = _read_json(Path(folder) / "tokenizer_config.json").get("chat_template")
        if isinstance(template, str) and template:
            return template
    return None


def base_license(base) -> str:
    if base is None:
        return UNKNOWN_LICENSE
    folder = Path(base.path or "/nonexistent")
    try:
        readme = (folder / "README.md").read_text()[:20_000]
    except OSError:
        readme = ""
    if readme.startswith("---"):
        front = readme.split("---", 2)[1] if readme.count("---") >= 2 else ""
        found = _FRONT_LICENSE.search(front)
        if found:
            return found.group(1).strip()
    for name in ("hub_base_model.json", "config.json"):
        value = _read_json(folder / name).get("license")
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    key = f"{base.pk} {base.name}".lower()
    for needle, license_name in KNOWN_LICENSES:
        if needle in key:
            return license_name
    return UNKNOWN_LICENSE


def base_hf_id(base, adapter_dir: Path | None) -> str:
    """What an adapter's example loads as its base: a Hugging Face id when one is known, else the local path."""
    if adapter_dir is not None:
        named = _read_json(adapter_dir / "adapter_config.json").get("base_model_name_or_path")
        if isinstance(named, str) and named and not named.startswith("/"):
            return named
    if base is None:
        return ""
    key = f"{base.pk} {base.name}".lower()
    for needle, hf_id in HF_IDS:
        if needle in key:
            return hf_id
    return base.path


# -- the tool registry ------------------------------------------------------------------------------------------
def _tools_module():
    for name in ("apps.registry.tools.selectors", "apps.registry.tools.services"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        if hasattr(module, "tool_registry_export") and hasattr(module, "tool_docs_markdown"):
            return module
    return None


def _fallback_registry() -> tuple[dict, str]:
    from apps.registry.models import Tool

    tools = [{"name": t.name, "description": t.description, "parameters": t.parameters or {},
              "call_format": t.call_format, "origin": t.origin} for t in Tool.objects.order_by("name")]
    lines = ["# Tools", ""] + [f"## `{t['name']}`\n\n{t['description']}\n" for t in tools]
    return {"tools": tools}, "\n".join(lines) + ("" if tools else "No tools are registered.\n")


def tool_registry() -> tuple[dict, str]:
    module = _tools_module()
    if module is None:
        return _fallback_registry()
    return module.tool_registry_export(), module.tool_docs_markdown()


def openai_tools(registry: dict) -> list[dict]:
    """The registry's tools as OpenAI `tools` entries ({"type": "function", "function": {...}})."""
    items = registry.get("tools") if isinstance(registry, dict) else None
    if isinstance(items, dict):
        items = [{"name": k, **v} for k, v in items.items() if isinstance(v, dict)]
    out = []
    for item in items or []:
        if not isinstance(item, dict):
            continue
        fn = item.get("function") if isinstance(item.get("function"), dict) else item
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            continue
        params = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {}
        out.append({"type": "function", "function": {
            "name": name, "description": str(fn.get("description") or ""),
            "parameters": params or {"type": "object", "properties": {}}}})
    return out


# -- everything a bundle says -------------------------------------------------------------------------------------
def _split_counts(dataset_version) -> dict:
    from apps.datasets.models import Example

    rows = Example.objects.filter(version=dataset_version).values("split").annotate(n=Count("id"))
    return {r["split"]: r["n"] for r in rows}


def _lineage(version) -> dict:
    run, dv = version.run, version.dataset_version
    parents, p, seen = [], version.parent, set()
    while p is not None and p.pk not in seen and len(parents) < 20:
        seen.add(p.pk)
        parents.append({"id": p.pk, "name": p.name, "served_name": p.served_name})
        p = p.parent
    dataset = None
    if dv is not None:
        splits = _split_counts(dv)
        dataset = {"id": dv.pk, "dataset_id": dv.dataset_id, "name": dv.dataset.name, "number": dv.number,
                   "example_count": dv.example_count, "train_count": splits.get("train", 0),
                   "validation_count": splits.get("validation", 0), "format": dv.format}
    return {
        "run": ({"id": run.pk, "name": str(run), "method": run.method, "backend": run.backend, "status": run.status,
                 "hyperparameters": run.hyperparameters or {},
                 "finished_at": run.finished_at.isoformat() if run.finished_at else None} if run else None),
        "dataset_version": dataset,
        "parents": parents,
    }


def _metrics(version) -> dict:
    out = {"final_loss": version.final_loss, **(version.metrics or {})}
    summary = getattr(version.run, "summary", None) or {}
    if isinstance(summary.get("evaluation"), dict) and summary["evaluation"]:
        out["evaluation"] = summary["evaluation"]
    return {k: v for k, v in out.items() if v is not None}


def hub_base_url() -> str:
    host = settings.HUB_HOST if settings.HUB_HOST not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.HUB_PORT}/v1"


def bundle_facts(bundle) -> dict:
    export = bundle.export
    version = export.model_version
    base = version.base_model
    files = export_files(export)
    export_root = artifact_path(export.path)
    folders = [export_root] if export_root.is_dir() else []
    if version.artifact_path:
        folders.append(artifact_path(version.artifact_path))
    if base is not None and base.path:
        folders.append(Path(base.path))
    template = chat_template(folders)
    registry, tools_md = tool_registry()
    gguf = next((arc for _, arc in files if arc.endswith(".gguf")), None)
    config = dict(bundle.config or {})
    return {
        "bundle": {"id": bundle.pk, "created_at": bundle.created_at.isoformat() if bundle.created_at else None},
        "export": {"id": export.pk, "format": export.format, "quantization": export.quantization,
                   "status": export.status, "llama_cpp_version": export.llama_cpp_version,
                   "checks": export.checks or {}, "timings": export.timings or {}, "size_bytes": export.size_bytes},
        "version": {"id": version.pk, "name": version.name, "served_name": version.served_name,
                    "kind": version.kind, "aliases": sorted(version.aliases.values_list("name", flat=True)),
                    "hyperparameters": version.hyperparameters or {},
                    "created_at": version.created_at.isoformat() if version.created_at else None},
        "base": ({"id": base.pk, "name": base.name, "context_length": base.context_length,
                  "architecture": base.architecture, "parameters": base.parameters, "license": base_license(base),
                  "hf_id": base_hf_id(base, export_root if export.format == "adapter" and export_root.is_dir()
                                      else None)} if base else None),
        "context_length": base.context_length if base else 2048,
        "lineage": _lineage(version),
        "metrics": _metrics(version),
        "config": config,
        "files": [{"arcname": arc, "size": path.stat().st_size} for path, arc in files],
        "gguf": gguf,
        "chat_template": template,
        "chatml": bool(template and "<|im_start|>" in template),
        "tools": registry,
        "tools_md": tools_md,
        "openai_tools": openai_tools(registry),
        "hub_base_url": config.get("hub_base_url") or hub_base_url(),
    }
