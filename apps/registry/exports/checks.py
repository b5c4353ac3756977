"""Round-trip checks of an export: which prompts they use, the thresholds per format and quantization (one table),
and the comparison of the export's answers and perplexity with the source version's.

Contract:
- `validation_prompts(version, limit=16)` -> {"origin", "prompts": [{"messages", "tools"}], "texts": [str]}: the
  version's dataset version's validation split, else up to `limit` of its examples, else FIXED_PROMPTS; each
  prompt is an example's conversation up to (not including) its last assistant turn; `texts` are the whole
  conversations as plain text (what perplexity is measured on).
- `thresholds_for(format, quantization)` -> THRESHOLDS' row (adapter, merged, or a GGUF quantization).
- `evaluate(reference, exported, prompts=, format=, quantization=)` -> the `checks` JSON of Export (shape in the
  model's comment): perplexity difference, greedy agreement (exact answers, and the mean token-level prefix
  agreement), tool-call validity (`ToolJudge`: Hermes blocks parsed by the local server's parser, bracket calls by
  the registry's scanner; a call is valid when it names a registry tool and its arguments fit the tool's schema
  (apps.registry.tools.selectors.tool_call_problems), or names a tool the prompt offered), `reasons` in words for
  every threshold passed, `passed`.
- `summary(checks)` -> one line in words for the pages ("perplexity +1.2 % · greedy agreement 15/16 · ...").
"""
from __future__ import annotations

import json

from workers.engine.chat_format import TOOL_CALL_OPEN

PROMPT_LIMIT = 16
# ppl_delta_pct: |export - source| / source, in %, at most; greedy_agreement: mean token-level prefix agreement of
# the greedy answers (48 new tokens), at least; tool_validity_drop: how much lower the share of valid tool calls may
# be. Measured on SmolLM2-135M-Instruct (+ a LoRA) with 16 validation prompts of the demo data (bench/bench_exports.py):
# adapter / merged ±0.0 % and 1.0; GGUF f16 ±0.02 % and 1.0; q8_0 +0.5..+1.6 % and 0.54..0.60 (a 135M model's greedy
# path forks early: one flipped token and the rest differs); q4_k_m +10..+18 % and 0.30..0.35. A broken export (a
# tokenizer or template mismatch, wrong weights) lands near 0 agreement and far past the perplexity bound.
THRESHOLDS: dict[str, dict] = {
    "adapter": {"ppl_delta_pct": 0.5, "greedy_agreement": 0.95, "tool_validity_drop": 0.0},
    "merged": {"ppl_delta_pct": 0.5, "greedy_agreement": 0.95, "tool_validity_drop": 0.0},
    "f32": {"ppl_delta_pct": 1.0, "greedy_agreement": 0.9, "tool_validity_drop": 0.0},
    "f16": {"ppl_delta_pct": 1.0, "greedy_agreement": 0.9, "tool_validity_drop": 0.0},
    "bf16": {"ppl_delta_pct": 2.0, "greedy_agreement": 0.6, "tool_validity_drop": 0.05},
    "q8_0": {"ppl_delta_pct": 3.0, "greedy_agreement": 0.4, "tool_validity_drop": 0.1},
    "q6_k": {"ppl_delta_pct": 6.0, "greedy_agreement": 0.35, "tool_validity_drop": 0.15},
    "q5_k_m": {"ppl_delta_pct": 12.0, "greedy_agreement": 0.3, "tool_validity_drop": 0.2},
    "q4_k_m": {"ppl_delta_pct": 30.0, "greedy_agreement": 0.2, "tool_validity_drop": 0.25},
    "q4_0": {"ppl_delta_pct": 40.0, "greedy_agreement": 0.15, "tool_validity_drop": 0.3},
}
FIXED_PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that returns the sum of a list of numbers.",
    "Explain in two sentences what a neural network is.",
    "Give me three tips for a good night's sleep.",
    "The party enters a dark cave. Describe what they see.",
    "Translate 'good morning' into Spanish and German.",
    "What is 17 multiplied by 3?",
    "Summarize the plot of Romeo and Juliet in one sentence.",
]


def thresholds_for(fmt: str, quantization: str = "") -> dict:
    return dict(THRESHOLDS.get(quantization or fmt) or THRESHOLDS["q4_0"])


# -- prompts -------------------------------------------------------------------------------------------------
def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _prompt_of(messages: list, tools) -> dict | None:
    if not isinstance(messages, list) or not messages:
        return None
    last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
               default=None)
    head = messages[:last] if last is not None else messages
    if not head or not any(isinstance(m, dict) and m.get("role") == "user" for m in head):
        return None
    return {"messages": head, "tools": tools or None}


def _plain(messages: list) -> str:
    parts = []
    for m in messages if isinstance(messages, list) else []:
        if isinstance(m, dict):
            text = _text(m.get("content"))
            if text.strip():
                parts.append(text.strip())
    return "\n".join(parts)


def validation_prompts(version, *, limit: int = PROMPT_LIMIT) -> dict:
    from apps.datasets.models import Example

    dv_id = version.dataset_version_id
    rows, origin = [], "fixed prompts"
    if dv_id:
        qs = Example.objects.filter(version_id=dv_id).order_by("index").only("messages", "tools")
        rows = list(qs.filter(split=Example.Split.VALIDATION)[: limit * 2])
        origin = "validation split"
        if not rows:
            rows, origin = list(qs[: limit * 2]), "dataset examples"
    prompts, texts = [], []
    for ex in rows:
        p = _prompt_of(ex.messages, ex.tools)
        if p is not None and len(prompts) < limit:
            prompts.append(p)
            texts.append(_plain(ex.messages))
    if not prompts:
        origin = "fixed prompts"
        prompts = [{"messages": [{"role": "user", "content": q}], "tools": None} for q in FIXED_PROMPTS[:limit]]
        texts = list(FIXED_PROMPTS)
    return {"origin": origin, "prompts": prompts, "texts": texts}


# -- tool calls ----------------------------------------------------------------------------------------------
class ToolJudge:
    """Says whether a call is valid: it names a tool the hub knows (the registry's, or one the prompt offered) and,
    for a registry tool, its arguments fit the tool's schema (apps.registry.tools.selectors.tool_call_problems)."""

    def __init__(self, prompt_tools: set[str]):
        try:
            from apps.registry.tools import scan, selectors as tool_selectors
            from apps.registry.tools.validate import parameter_order

            self.schemas = tool_selectors.tool_registry_schemas()
            self.problems = tool_selectors.tool_call_problems
            self.scan = scan
            self.params = {n: parameter_order(s) for n, s in self.schemas.items()}
        except ImportError:  # no tool registry: names are checked against the prompts' tools only
            self.schemas, self.problems, self.scan, self.params = {}, None, None, {}
        self.prompt_tools = set(prompt_tools)

    def known(self, name: str) -> bool:
        return name in self.schemas or name in self.prompt_tools

    def valid(self, name: str, args) -> bool:
        if name in self.schemas and self.problems is not None:
            return not self.problems(name, args, registry=self.schemas)
        return name in self.prompt_tools and (args is None or isinstance(args, dict))

    def count(self, answer: str) -> tuple[int, int]:
        """(calls the answer attempts, valid ones). Hermes blocks are parsed with the local server's parser
        (workers.inference.tools.split_calls: a block that does not parse counts as an invalid attempt); bracket
        calls (`[name: args]`, the registry's scanner) count only when they name a known tool."""
        from workers.inference.tools import split_calls

        total = answer.count(TOOL_CALL_OPEN)
        valid = 0
        for call in split_calls(answer)[1]:
            try:
                args = json.loads(call["function"]["arguments"])
            except ValueError:
                args = None
            valid += int(self.known(call["function"]["name"]) and self.valid(call["function"]["name"], args))
        if self.scan is not None and "[" in answer:
            for name, args, fmt in self.scan.calls_in_messages([{"role": "assistant", "content": answer}],
                                                               self.params):
                if fmt == "bracket" and self.known(name):
                    total += 1
                    valid += int(self.valid(name, args))
        return total, valid

    def tally(self, answers: list[str]) -> dict:
        total = valid = 0
        for a in answers:
            t, v = self.count(a)
            total, valid = total + t, valid + v
        return {"total": total, "valid": valid, "validity": round(valid / total, 4) if total else None}


def prompt_tool_names(prompts: list[dict]) -> set[str]:
    names = set()
    for p in prompts:
        for t in p.get("tools") or []:
            spec = t.get("function") if isinstance(t, dict) and isinstance(t.get("function"), dict) else t
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                names.add(spec["name"])
    return names


# -- comparison ----------------------------------------------------------------------------------------------
def prefix_agreement(a: list[int], b: list[int]) -> float:
    """Share of the longer answer's tokens before the two answers first differ (1.0: identical)."""
    if not a and not b:
        return 1.0
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n / max(len(a), len(b))


def _pct(x: float) -> str:
    return f"{x:+.1f} %" if abs(x) >= 0.05 else "±0.0 %"


def evaluate(reference: dict, exported: dict, *, prompts: list[dict], fmt: str, quantization: str = "",
             origin: str = "", examples: int = 4) -> dict:
    limits = thresholds_for(fmt, quantization)
    ref_ppl, exp_ppl = float(reference["perplexity"]["ppl"]), float(exported["perplexity"]["ppl"])
    delta = (exp_ppl - ref_ppl) / ref_ppl * 100.0 if ref_ppl else 0.0
    pairs = list(zip(reference["answers"], exported["answers"]))
    exact = sum(1 for a, b in pairs if a.strip() == b.strip())
    ratios = [prefix_agreement(a, b) for a, b in zip(reference["answer_tokens"], exported["answer_tokens"])]
    agreement = sum(ratios) / len(ratios) if ratios else 1.0
    judge = ToolJudge(prompt_tool_names(prompts))
    source_tools = judge.tally(reference["answers"])
    export_tools = judge.tally(exported["answers"])
    reasons = []
    if abs(delta) > limits["ppl_delta_pct"]:
        reasons.append(f"Perplexity changed by {_pct(delta)} ({ref_ppl:.3f} → {exp_ppl:.3f}); at most "
                       f"±{limits['ppl_delta_pct']:g} % is expected for {quantization or fmt}.")
    if agreement < limits["greedy_agreement"]:
        reasons.append(f"Greedy answers agree on {agreement * 100:.0f} % of their tokens ({exact}/{len(pairs)} "
                       f"identical); at least {limits['greedy_agreement'] * 100:.0f} % is expected.")
    src_v, exp_v = source_tools["validity"], export_tools["validity"]
    if export_tools["total"] and exp_v is not None and exp_v < (src_v if src_v is not None else 1.0) - \
            limits["tool_validity_drop"]:
        reasons.append(f"Only {export_tools['valid']}/{export_tools['total']} tool calls are valid "
                       f"(the source: {source_tools['valid']}/{source_tools['total']}).")
    elif source_tools["valid"] and export_tools["valid"] < source_tools["valid"] * (1 - limits["tool_validity_drop"]):
        reasons.append(f"The export makes {export_tools['valid']} valid tool calls where the source makes "
                       f"{source_tools['valid']}.")
    return {
        "prompts": len(pairs), "prompt_origin": origin,
        "perplexity": {"source": round(ref_ppl, 4), "export": round(exp_ppl, 4), "delta_pct": round(delta, 3),
                       "chunks": exported["perplexity"].get("chunks")},
        "greedy_agreement": round(agreement, 4),
        "greedy": {"identical": exact, "total": len(pairs), "prefix_agreement": round(agreement, 4)},
        "tool_calls": {**export_tools, "source_total": source_tools["total"], "source_valid": source_tools["valid"]},
        "thresholds": limits, "reasons": reasons, "passed": not reasons,
        "examples": [{"prompt": _plain(p["messages"])[-300:], "source": a[:400], "export": b[:400],
                      "same": a.strip() == b.strip()} for p, (a, b) in list(zip(prompts, pairs))[:examples]],
    }


def summary(checks: dict) -> str:
    """One line in words, e.g. "perplexity +1.2 % · greedy agreement 15/16 · tool calls 3/3 valid"."""
    if not checks or "perplexity" not in checks:
        return ""
    parts = [f"perplexity {_pct(float(checks['perplexity'].get('delta_pct') or 0.0))}"]
    g = checks.get("greedy") or {}
    if g.get("total"):
        parts.append(f"greedy agreement {g.get('identical', 0)}/{g['total']}"
                     + (f" ({g['prefix_agreement'] * 100:.0f} % of tokens)" if g.get("identical") != g["total"]
                        else ""))
    t = checks.get("tool_calls") or {}
    if t.get("total"):
        parts.append(f"tool calls {t.get('valid', 0)}/{t['total']} valid")
    elif t.get("source_total"):
        parts.append("no tool calls (the source made some)")
    return " · ".join(parts)
