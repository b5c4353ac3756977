"""Constrained decoding on the local server: `response_format` (json_object, json_schema) and forced
tool calls (`tool_choice` "required" or a named function), with llguidance.

llguidance (PyPI `llguidance`, a 3 MB Rust wheel with no dependencies, the structured-output engine
of vLLM, SGLang and llama.cpp) compiles a JSON schema, or a Lark grammar with inline JSON schemas,
against the model's tokenizer and gives, at each step, the set of tokens that keep the output
valid; the engine masks every other logit before sampling. Its JSON-schema coverage is documented
at https://github.com/guidance-ai/llguidance/blob/main/docs/json_schema.md; a schema that uses what
it cannot enforce (e.g. `not`, `dependentSchemas`, look-around regexes, remote `$ref`s) is answered
with 400 `unsupported_value` (param `response_format`, or `tools` for a forced call's parameters).

JSON is generated compactly (no free whitespace between tokens: `{"a": 1, "b": [2, 3]}`): small
models otherwise wander off into whitespace. A schema's own `x-guidance` options can change that.
"""
from __future__ import annotations

import json
import threading

from workers.engine.chat_format import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from workers.inference.engine import EngineError
from workers.inference.tools import ToolPlan

JSON_OPTIONS = {"whitespace_flexible": False}
_ll_lock = threading.Lock()


def _schema_with_options(schema: dict) -> dict:
    out = dict(schema)
    out["x-guidance"] = {**JSON_OPTIONS, **(schema.get("x-guidance") or {})}
    return out


def response_schema(body: dict) -> dict | None:
    """The JSON schema `response_format` asks for ({"type": "object"} for json_object), or None for
    text / absent. EngineError 400 on a bad shape."""
    rf = body.get("response_format")
    if rf is None:
        return None
    if not isinstance(rf, dict):
        raise EngineError("`response_format` must be an object.", param="response_format")
    kind = rf.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict):
            raise EngineError("`response_format.json_schema` must be an object.", param="response_format")
        schema = js.get("schema", {"type": "object"})
        if not isinstance(schema, (dict, bool)):
            raise EngineError("`response_format.json_schema.schema` must be a JSON schema object.",
                              param="response_format")
        return {} if schema is True else schema if isinstance(schema, dict) else {"not": {}}
    raise EngineError("`response_format.type` must be one of text, json_object, json_schema.",
                      param="response_format")


def _lark_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lark string literal


def _call_schema(tools: list[dict], only: str | None) -> dict:
    variants = []
    for t in tools:
        fn = t["function"]
        if only is not None and fn["name"] != only:
            continue
        params = fn.get("parameters") or {"type": "object"}
        variants.append({"type": "object", "properties": {"name": {"const": fn["name"]}, "arguments": params},
                         "required": ["name", "arguments"], "additionalProperties": False})
    schema = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return _schema_with_options(schema)


def build_grammar(body: dict, plan: ToolPlan) -> str | None:
    """The llguidance grammar the output must follow, or None (unconstrained).

    - response_format only: the output is the JSON value;
    - forced tools: the output is ``<tool_call>{json}</tool_call>`` block(s), one per line;
    - response_format with tools on "auto": either the JSON answer or tool call(s)."""
    from llguidance import LLMatcher

    schema = response_schema(body)
    forced = plan.tools is not None and plan.force is not None
    if schema is None and not forced:
        return None
    if schema is not None:
        err = _schema_error(schema)
        if err:
            raise EngineError(f"This JSON schema cannot be enforced by the local server: {err}",
                              param="response_format", code="unsupported_value")
    rules, alts = [], []
    if schema is not None and not forced:  # a forced call takes precedence over the answer's format
        rules.append("answer: %json " + json.dumps(_schema_with_options(schema), ensure_ascii=False))
        alts.append("answer")
    if plan.tools is not None and (forced or schema is not None):
        only = plan.force if plan.force not in (None, "required") else None
        rules.append("call: " + _lark_str(TOOL_CALL_OPEN) + " call_body " + _lark_str(TOOL_CALL_CLOSE))
        rules.append("call_body: %json " + json.dumps(_call_schema(plan.tools, only), ensure_ascii=False))
        alts.append('call ("\\n" call)*' if plan.parallel else "call")
    grammar = LLMatcher.grammar_from_lark("start: " + " | ".join(alts) + "\n" + "\n".join(rules) + "\n")
    err = LLMatcher.validate_grammar(grammar)
    if err:
        raise EngineError(f"These tools' parameter schemas cannot be enforced by the local server: {err}",
                          param="tools", code="unsupported_value")
    return grammar


def _schema_error(schema: dict) -> str:
    from llguidance import LLMatcher

    return LLMatcher.validate_grammar(LLMatcher.grammar_from_json_schema(_schema_with_options(schema)))


def ll_tokenizer(loaded):
    """The llguidance view of a loaded model's tokenizer (built once per model, ~0.3 s for 49k tokens)."""
    tok = loaded.ll_tokenizer
    if tok is not None:
        return tok
    import llguidance.hf

    with _ll_lock:
        tok = loaded.ll_tokenizer
        if tok is None:
            n_vocab = int(loaded.model.get_output_embeddings().weight.shape[0])
            eos = sorted(i for i in loaded.eos_ids if i < n_vocab) or None
            try:
                tok = llguidance.hf.from_tokenizer(loaded.tokenizer, n_vocab=n_vocab, eos_token=eos)
            except Exception as exc:
                raise EngineError(f"Constrained decoding is not available for this model's tokenizer: {exc}",
                                  param="response_format", code="unsupported_value") from exc
            loaded.ll_tokenizer = tok
    return tok


class Constraint:
    """One request's matcher: `mask(logits)` before sampling, `advance(token)` after."""

    def __init__(self, loaded, grammar: str):
        from llguidance import LLMatcher

        self.matcher = LLMatcher(ll_tokenizer(loaded), grammar, log_level=0)
        if self.matcher.is_error():
            raise EngineError(f"The grammar was refused: {self.matcher.get_error()}", code="unsupported_value",
                              param="response_format")

    def mask(self, logits) -> None:
        import torch

        bias = self.matcher.compute_logit_bias()
        if self.matcher.is_error():
            raise RuntimeError(f"constrained decoding failed: {self.matcher.get_error()}")
        allowed = torch.frombuffer(bytearray(bias), dtype=torch.uint8)
        n = min(allowed.numel(), logits.numel())
        logits[:n].masked_fill_(allowed[:n] == 0, float("-inf"))
        if logits.numel() > n:
            logits[n:] = float("-inf")

    def advance(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise RuntimeError(f"constrained decoding failed: {self.matcher.get_error()}")

    def done(self) -> bool:
        """The grammar is complete and admits nothing more (only EOS)."""
        return self.matcher.is_stopped()
