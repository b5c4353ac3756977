"""A bundle's text files, rendered from its facts (facts.bundle_facts): pure functions, no database.

Contract: `render_files(facts) -> {arcname: text}` gives deployment_config.json, tools.json, TOOLS.md,
test_results.json, README.md and the examples that fit the export's format (examples/openai_client.py and
examples/client.ts always; GGUF: examples/llama_server.sh and examples/Modelfile; merged and adapter:
examples/transformers_example.py, with peft for an adapter). The examples are string.Template files beside this
module; every value is escaped for its file: Python literals with repr / pprint, shell words with shlex.quote,
TypeScript with json.dumps, Modelfile strings with Ollama's triple quotes, Markdown with `md`. Names typed by
people (a version's name) reach comments only through `comment_text` (one printable line, no quotes or
backslashes), so no value can end a comment, a docstring or a string early.
"""
from __future__ import annotations

import json
import pprint
import re
import shlex
from pathlib import Path
from string import Template

from django.utils.text import slugify

from apps.registry.bundles.config import SAMPLING

TEMPLATES = Path(__file__).resolve().parent / "templates"
SCHEMA_VERSION = 1
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&])")
_CHATML_TEMPLATE = ('TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
                    '{{ end }}<|im_start|>assistant\n"""')


# -- escaping --------------------------------------------------------------------------------------------------
def comment_text(value, limit: int = 120) -> str:
    """One printable line fit for any comment or docstring: no quotes, backslashes, `*/` or line breaks."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value or ""))
    text = text.replace("\\", "/").replace('"', "'").replace("*/", "* /")
    return re.sub(r"\s+", " ", text).strip()[:limit] or "-"


def md(value) -> str:
    """Text safe in Markdown prose and table cells: special characters escaped, one line."""
    text = re.sub(r"\s+", " ", str(value if value is not None else "—")).strip()
    return _MD_SPECIAL.sub(r"\\\1", text)


def ts(value) -> str:
    """A JSON value as TypeScript source (JSON is valid TS; U+2028/9 written as escapes)."""
    return json.dumps(value, ensure_ascii=False, indent=2).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def py(value) -> str:
    """A Python literal (strings via repr; dicts and lists of JSON values via pprint)."""
    return pprint.pformat(value, width=100, sort_dicts=False) if isinstance(value, (dict, list)) else repr(value)


def number(value) -> str:
    return str(value) if isinstance(value, int) else f"{float(value):g}"


def _render(name: str, **values) -> str:
    return Template((TEMPLATES / name).read_text()).substitute(**values)


# -- JSON files --------------------------------------------------------------------------------------------------
def deployment_config(f: dict) -> dict:
    c, e, v = f["config"], f["export"], f["version"]
    return {
        "schema_version": SCHEMA_VERSION,
        "served_name": v["served_name"],
        "aliases": v["aliases"],
        "format": e["format"],
        "quantization": e["quantization"] or None,
        "llama_cpp_version": e["llama_cpp_version"] or None,
        "context_length": f["context_length"],
        "system_prompt": c.get("system_prompt", ""),
        "system_prompt_source": c.get("system_prompt_source", "none"),
        **{name: c.get(name) for name in SAMPLING},
        "model_files": [x["arcname"] for x in f["files"]],
        "chat_template": "chatml" if f["chatml"] else ("model" if f["chat_template"] else None),
        "tools": {"file": "tools.json", "docs": "TOOLS.md", "count": len(f["openai_tools"])},
        "hub": {"base_url": f["hub_base_url"], "model_version_id": v["id"], "model_version_name": v["name"],
                "export_id": e["id"], "bundle_id": f["bundle"]["id"]},
    }


def test_results(f: dict) -> dict:
    e, checks = f["export"], f["export"]["checks"]
    return {
        "export": {"id": e["id"], "format": e["format"], "quantization": e["quantization"] or None,
                   "status": e["status"], "passed": e["status"] == "succeeded",
                   "reasons": checks.get("reasons") or [], "checks": checks, "timings": e["timings"],
                   "llama_cpp_version": e["llama_cpp_version"] or None},
        "model_version": {"id": f["version"]["id"], "name": f["version"]["name"], "metrics": f["metrics"]},
        "validation": {k: f["metrics"][k] for k in f["metrics"] if k.startswith("eval") or k == "perplexity"},
    }


# -- examples -----------------------------------------------------------------------------------------------------
def _common(f: dict) -> dict:
    c, tool = f["config"], (f["openai_tools"][0] if f["openai_tools"] else None)
    name = tool["function"]["name"] if tool else ""
    what = tool["function"]["description"] or "show how it is called" if tool else ""
    prompt = f"Use the {name} tool for this: {what}" if tool else ""
    return {"title": comment_text(f"{f['version']['name']} ({f['version']['served_name']})"),
            "bundle_id": f["bundle"]["id"], "tool": tool, "tool_prompt": prompt[:500],
            **{k: c.get(k) for k in SAMPLING}, "system_prompt": c.get("system_prompt", "")}


def openai_client(f: dict) -> str:
    v = _common(f)
    return _render("openai_client.py.tmpl", title=v["title"], bundle_id=v["bundle_id"],
                   base_url=py(f["hub_base_url"]), model=py(f["version"]["served_name"]),
                   system_prompt=py(v["system_prompt"]), tool=py(v["tool"]), tool_prompt=py(v["tool_prompt"]),
                   **{k: py(v[k]) for k in SAMPLING})


def client_ts(f: dict) -> str:
    v = _common(f)
    return _render("client.ts.tmpl", title=v["title"], bundle_id=v["bundle_id"], base_url=ts(f["hub_base_url"]),
                   model=ts(f["version"]["served_name"]), system_prompt=ts(v["system_prompt"]),
                   tool=ts(v["tool"]), tool_prompt=ts(v["tool_prompt"]), **{k: ts(v[k]) for k in SAMPLING})


def transformers_example(f: dict) -> str:
    v = _common(f)
    values = dict(title=v["title"], bundle_id=v["bundle_id"], model_dir=py("model"),
                  system_prompt=py(v["system_prompt"]), **{k: py(v[k]) for k in SAMPLING})
    if f["export"]["format"] == "adapter":
        base = f["base"] or {}
        return _render("transformers_peft_example.py.tmpl", base_model=py(base.get("hf_id") or ""),
                       base_comment=comment_text(base.get("hf_id") or "<base model>"),
                       base_name=comment_text(base.get("name") or "unknown"), **values)
    return _render("transformers_example.py.tmpl", **values)


def llama_server(f: dict) -> str:
    v = _common(f)
    served = f["version"]["served_name"]
    return _render("llama_server.sh.tmpl", title=v["title"], bundle_id=v["bundle_id"],
                   llama_cpp_version=comment_text(f["export"]["llama_cpp_version"] or "(version not recorded)"),
                   served_name_comment=comment_text(served), model_path=shlex.quote(f["gguf"]),
                   jinja="--jinja " if f["chat_template"] else "", context_length=f["context_length"],
                   served_name=shlex.quote(served), **{k: shlex.quote(number(v[k])) for k in SAMPLING})


def modelfile(f: dict) -> str:
    v = _common(f)
    path = "../" + f["gguf"]
    from_path = f'"{path}"' if re.search(r"\s", path) else path
    prompt = v["system_prompt"].replace('"""', "'''")
    system_block = f'SYSTEM """{prompt}"""\n' if prompt.strip() else ""
    if f["chatml"]:
        template_block, stops = _CHATML_TEMPLATE, 'PARAMETER stop "<|im_end|>"\nPARAMETER stop "<|im_start|>"\n'
    else:
        template_block, stops = "# No TEMPLATE: Ollama takes the chat template stored in the GGUF.", ""
    name = slugify(f["version"]["name"])[:60].strip("-_") or f["version"]["served_name"]
    return _render("Modelfile.tmpl", title=v["title"], bundle_id=v["bundle_id"], ollama_name=name,
                   from_path=from_path, template_block=template_block, stop_lines=stops, system_block=system_block,
                   context_length=f["context_length"], **{k: number(v[k]) for k in SAMPLING})


# -- the model card -----------------------------------------------------------------------------------------------
def _flat(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in (data or {}).items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            out.append((f"{prefix}{key}", value))
    return out


def _table(rows: list[tuple[str, object]], head=("Name", "Value")) -> list[str]:
    if not rows:
        return ["None recorded.", ""]
    fmt = (lambda x: f"{x:.6g}" if isinstance(x, float) else x)
    return [f"| {head[0]} | {head[1]} |", "|---|---|"] + [f"| {md(k)} | {md(fmt(val))} |" for k, val in rows] + [""]


def _run_section(f: dict) -> list[str]:
    e, v, served = f["export"], f["version"], f["version"]["served_name"]
    quant = f" {e['quantization']}" if e["quantization"] else ""
    lines = ["## How to run", "", f"This bundle holds the **{md(e['format'])}{md(quant)}** export. The examples carry "
             "the settings of `deployment_config.json`; `tools.json` lists the tools the model knows.", "",
             f"- **The hub's `/v1`** (served as `{served}`): `HUB_API_KEY=th_... python examples/openai_client.py`, "
             "or `npx tsx examples/client.ts`."]
    if e["format"] == "gguf":
        lines += ["- **llama.cpp**: `bash examples/llama_server.sh`, then the same clients with "
                  "`HUB_BASE_URL=http://127.0.0.1:8080/v1`.",
                  "- **Ollama**: `ollama create NAME -f examples/Modelfile && ollama run NAME`."]
    else:
        need = "torch transformers peft" if e["format"] == "adapter" else "torch transformers"
        lines += [f"- **transformers**: `pip install {need}`, then `python examples/transformers_example.py`."]
    return lines + [""]


def readme(f: dict) -> str:
    e, v, base, lin = f["export"], f["version"], f["base"], f["lineage"]
    run, ds, c = lin["run"], lin["dataset_version"], f["config"]
    quant = f" {e['quantization']}" if e["quantization"] else ""
    out = [f"# {md(v['name'])} (`{v['served_name']}`)", "",
           f"Deploy bundle {f['bundle']['id']} of export {e['id']} ({md(e['format'])}{md(quant)}), "
           f"built by Training Hub from model version {v['id']}.", "", "## Lineage", ""]
    if base:
        out.append(f"- **Base model**: {md(base['name'])} ({md(base['id'])}), {md(base['architecture'] or 'unknown')}"
                   f" architecture, {md(base['parameters'] or 'unknown')} parameters, context length "
                   f"{base['context_length']} tokens; license: {md(base['license'])}.")
    out.append("- **Parent versions**: " + (" ← ".join(f"{md(p['name'])} (`{p['served_name']}`)"
                                                       for p in lin["parents"]) or "none (trained from the base)."))
    out.append(f"- **Training run**: run {run['id']} ({md(run['name'])}), {md(run['method'])} on {md(run['backend'])},"
               f" {md(run['status'])}." if run else "- **Training run**: none recorded.")
    llama = f", llama.cpp {md(e['llama_cpp_version'])}" if e["llama_cpp_version"] else ""
    out.append(f"- **Export**: export {e['id']}, {md(e['format'])}{md(quant)}{llama}; checks {md(e['status'])}.")
    if ds:
        out.append(f"- **Dataset**: {md(ds['name'])} v{ds['number']} (dataset version {ds['id']}): "
                   f"{ds['example_count']} examples, {ds['train_count']} for training and {ds['validation_count']} "
                   "held out for validation.")
    else:
        out.append("- **Dataset**: none recorded.")
    out += ["", "## Data", ""]
    source = {"dataset": "the training data's most common system prompt", "config": "set for this bundle",
              "none": "none"}[c.get("system_prompt_source", "none")]
    out += [f"Format {md(ds['format'] or 'chat')}; {ds['example_count']} examples." if ds else "No dataset recorded.",
            f"System prompt: {source}" + (f": “{md(c['system_prompt'][:300])}”" if c.get("system_prompt") else "."),
            "", "## Hyperparameters", ""]
    hyper = (run or {}).get("hyperparameters") or v["hyperparameters"]
    out += _table(sorted(_flat(hyper)))
    out += ["## Metrics", ""] + _table(_flat(f["metrics"]))
    reasons = e["checks"].get("reasons") or []
    out += ["## Checks", "", f"Round-trip checks of the export against the version it came from: **{md(e['status'])}**"
            + (" — " + "; ".join(md(r) for r in reasons) if reasons else "") + ". Details: `test_results.json`.", ""]
    out += _table([(k, val) for k, val in _flat(e["checks"]) if not k.startswith("thresholds")], ("Check", "Result"))
    out += ["## Deployment settings", ""] + _table([(k, c.get(k)) for k in SAMPLING] +
                                                   [("context_length", f["context_length"])], ("Setting", "Value"))
    out += ["## Tools", "", f"{len(f['openai_tools'])} tools from the hub's registry: `tools.json` (schemas) and "
            "`TOOLS.md` (how to call them).", ""]
    out += _run_section(f)
    out += ["## Files", ""] + [f"- `{x['arcname']}` ({x['size']} bytes)" if "`" not in x["arcname"]
                               else f"- {md(x['arcname'])} ({x['size']} bytes)" for x in f["files"]]
    license_name = md(base["license"]) if base else "see base model"
    out += ["", "## License", "", f"License: {license_name}. The weights derive from "
            f"{md(base['name']) if base else 'the base model'}, whose license terms apply to this model.", ""]
    return "\n".join(out)


# -- everything ---------------------------------------------------------------------------------------------------
def render_files(f: dict) -> dict[str, str]:
    files = {
        "deployment_config.json": json.dumps(deployment_config(f), indent=2, ensure_ascii=False) + "\n",
        "tools.json": json.dumps(f["tools"], indent=2, ensure_ascii=False, default=str) + "\n",
        "TOOLS.md": f["tools_md"] if f["tools_md"].endswith("\n") else f["tools_md"] + "\n",
        "test_results.json": json.dumps(test_results(f), indent=2, ensure_ascii=False, default=str) + "\n",
        "README.md": readme(f),
        "examples/openai_client.py": openai_client(f),
        "examples/client.ts": client_ts(f),
    }
    if f["export"]["format"] == "gguf" and f["gguf"]:
        files["examples/llama_server.sh"] = llama_server(f)
        files["examples/Modelfile"] = modelfile(f)
    elif f["export"]["format"] in ("merged", "adapter"):
        files["examples/transformers_example.py"] = transformers_example(f)
    return files
