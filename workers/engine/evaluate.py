"""Evaluation after training: side-by-side answers (base vs trained) and tool-call accuracy.
Knows nothing of Django."""
from __future__ import annotations

import json
import re
from contextlib import nullcontext

from workers.engine.chat_format import render_chat

_TOOL_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def _generate(model, tokenizer, messages: list[dict], *, max_new_tokens: int, tools=None) -> str:
    import torch

    text = render_chat(tokenizer, messages, tools, add_generation_prompt=True)  # the layout training used
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def parse_tool_calls(text: str) -> list[dict] | None:
    """Tool calls in a generated answer (Hermes `<tool_call>{json}</tool_call>` or a bare JSON object);
    None when the text does not contain a well-formed call."""
    calls = []
    for raw in _TOOL_RE.findall(text):
        try:
            obj = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(obj, dict) or "name" not in obj:
            return None
        calls.append(obj)
    if calls:
        return calls
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError:
            return None
        if isinstance(obj, dict) and "name" in obj:
            return [obj]
    return None


def tool_call_scenarios(examples: list[dict], limit: int = 20) -> list[tuple[list[dict], dict, list]]:
    """(prompt messages, expected call, tools) for the first tool-calling assistant turn of each example."""
    out = []
    for ex in examples:
        msgs = ex.get("messages") or []
        for i, m in enumerate(msgs):
            if m.get("role") == "assistant" and m.get("tool_calls"):
                call = m["tool_calls"][0]
                fn = call.get("function", call)
                out.append((msgs[:i], fn, ex.get("tools")))
                break
        if len(out) >= limit:
            break
    return out


def _check_stop(should_stop) -> None:
    if should_stop is not None and should_stop():
        from workers.engine.sft import StoppedByRequest

        raise StoppedByRequest()


def tool_call_accuracy(model, tokenizer, examples: list[dict], *, max_new_tokens: int = 96,
                       should_stop=None) -> dict | None:
    scenarios = tool_call_scenarios(examples)
    if not scenarios:
        return None
    right, well_formed, rows = 0, 0, []
    for prompt, expected, tools in scenarios:
        _check_stop(should_stop)
        answer = _generate(model, tokenizer, prompt, max_new_tokens=max_new_tokens, tools=tools)
        calls = parse_tool_calls(answer)
        ok_form = calls is not None and all(isinstance(c.get("arguments", {}), (dict, str)) for c in calls)
        if ok_form:
            for c in calls:
                if isinstance(c.get("arguments"), str):
                    try:
                        json.loads(c["arguments"])
                    except ValueError:
                        ok_form = False
        ok_tool = bool(ok_form and calls and calls[0].get("name") == expected.get("name"))
        well_formed += int(ok_form)
        right += int(ok_tool)
        rows.append({"expected": expected.get("name"), "answer": answer[:500], "well_formed": ok_form,
                     "right_tool": ok_tool})
    n = len(scenarios)
    return {"scenarios": n, "right_tool": right / n, "well_formed": well_formed / n, "rows": rows[:10]}


def default_prompts(examples: list[dict], n: int = 3) -> list[list[dict]]:
    prompts = []
    for ex in examples:
        msgs = ex.get("messages") or []
        for i, m in enumerate(msgs):
            if m.get("role") == "assistant":
                if i and not any(x.get("tool_calls") for x in msgs[:i]):
                    prompts.append(msgs[:i])
                break
        if len(prompts) >= n:
            break
    return prompts


def evaluate_after_training(job, model, tokenizer, *, should_stop=None) -> dict:
    """Side-by-side answers of the base and the trained model on a prompt set; tool-call accuracy on
    held-out scenarios when the data has tool calls. `should_stop()` is asked before every generation:
    when it says so, StoppedByRequest is raised (a cancel during evaluation)."""
    hp = job.hp
    validation = [ex for st in job.stages for ex in st.validation]
    pool = validation or [ex for st in job.stages for ex in st.train]
    custom = [p for p in (hp.get("eval_prompts") or []) if isinstance(p, str) and p.strip()]
    prompts = [[{"role": "user", "content": p}] for p in custom[:5]] or default_prompts(pool)
    max_new = int(hp.get("eval_max_new_tokens", 48))
    model.eval()
    out: dict = {"side_by_side": []}
    base_ctx, base_model = _base_for_comparison(job, model)
    for prompt in prompts:
        _check_stop(should_stop)
        trained = _generate(model, tokenizer, prompt, max_new_tokens=max_new)
        with base_ctx():
            base = _generate(base_model, tokenizer, prompt, max_new_tokens=max_new)
        out["side_by_side"].append({"prompt": prompt[-1].get("content", ""), "base": base, "trained": trained})
    if validation:
        tools = tool_call_accuracy(model, tokenizer, validation, should_stop=should_stop)
        if tools is not None:
            with base_ctx():
                base_tools = tool_call_accuracy(base_model, tokenizer, validation, should_stop=should_stop)
            tools["base_right_tool"] = base_tools["right_tool"] if base_tools else None
            out["tool_calls"] = tools
    return out


def _base_for_comparison(job, model):
    """(context manager factory, model) giving base-model behaviour: the adapter disabled for LoRA,
    else the starting weights loaded separately."""
    if hasattr(model, "disable_adapter") and job.method in ("lora", "dpo", "grpo") and not job.adapter_path:
        return model.disable_adapter, model
    from workers.engine.sft import load_causal_lm

    base = load_causal_lm(job.base_model_path)
    if job.adapter_path:
        from peft import PeftModel

        base = PeftModel.from_pretrained(base, job.adapter_path)
    base.to(next(model.parameters()).device)
    base.eval()
    return nullcontext, base
