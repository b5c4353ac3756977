"""Generation options (the first seed's: max scenarios, temperature, include tests, include config, exclude
complex; plus generators, seed, the opt-in test command and the teacher model) checked in one place, and the
cost and time estimate shown before launch.

`parse_options(raw)` returns the normalized options or raises ValidationFailed with field errors named as the
API body and the form name them (`max_examples`, `generators`, `test_command`, `teacher.model`, ...).
`estimate(source, analysis, options)` derives the expected number of scenarios, tokens, time and the training
and teacher costs from the analysis (no generator runs for it).
"""
from __future__ import annotations

import math

from django.conf import settings

from apps.core.exceptions import ValidationFailed
from workers.engine import repos as engine

DEFAULT_MAX = 1000
MAX_MAX = 100_000
TEACHER_ENDPOINTS = ("hub", "provider")
# Measured on this project's 2-core machine (bench/bench_sources.py): offline generators and validation.
EXAMPLES_PER_S = 40.0
SAVE_EXAMPLES_PER_S = 150.0
TOKENS_PER_LINE = 9
SIZE_BIAS = 1.8
PROMPT_OVERHEAD_TOKENS = 160
TEACHER_OUTPUT_TOKENS = 350


def _bool(raw, field: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if raw in (None, ""):
        return False
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValidationFailed(f"`{field}` is true or false.", field=field)


def _int(raw, field: str, lo: int, hi: int, default: int | None) -> int | None:
    if raw in (None, ""):
        return default
    if isinstance(raw, bool):
        raise ValidationFailed(f"`{field}` is a whole number.", field=field)
    try:
        value = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except (TypeError, ValueError):
        raise ValidationFailed(f"`{field}` is a whole number between {lo} and {hi}.", field=field) from None
    if not lo <= value <= hi:
        raise ValidationFailed(f"`{field}` must be between {lo} and {hi}.", field=field)
    return value


def _float(raw, field: str, lo: float, hi: float, default: float) -> float:
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(f"`{field}` is a number between {lo:g} and {hi:g}.", field=field) from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValidationFailed(f"`{field}` must be between {lo:g} and {hi:g}.", field=field)
    return value


def _text(raw, field: str, max_len: int) -> str:
    text = "" if raw is None else str(raw)
    if "\x00" in text:
        raise ValidationFailed(f"`{field}` must not contain NUL bytes.", field=field)
    text = text.strip()
    if len(text) > max_len:
        raise ValidationFailed(f"`{field}` must be at most {max_len} characters.", field=field)
    return text


def generator_names() -> tuple[str, ...]:
    return tuple(engine.GENERATORS)


def default_generators() -> list[str]:
    return list(getattr(engine, "DEFAULT_GENERATORS", engine.GENERATORS))


def parse_generators(raw) -> list[str]:
    if raw in (None, "", []):
        return default_generators()
    items = [p.strip() for p in raw.split(",")] if isinstance(raw, str) else [str(p).strip() for p in raw]
    items = [p for p in items if p]
    known = generator_names()
    bad = [p for p in items if p not in known]
    if bad:
        raise ValidationFailed(f"Unknown generator(s) {', '.join(bad)[:200]} (choose from {', '.join(known)}).",
                               field="generators")
    if not items:
        raise ValidationFailed("Choose at least one generator.", field="generators")
    return list(dict.fromkeys(items))


def parse_teacher(raw) -> dict | None:
    if raw in (None, "", {}) or (isinstance(raw, dict) and not raw.get("endpoint")):
        return None
    if not isinstance(raw, dict):
        raise ValidationFailed("`teacher` is an object {endpoint, model, ...} or null.", field="teacher")
    endpoint = _text(raw.get("endpoint"), "teacher.endpoint", 20)
    if endpoint not in TEACHER_ENDPOINTS:
        raise ValidationFailed("The teacher is this hub's /v1 (`hub`, with an alias or model name) or a provider "
                               "(`provider`, with its id).", field="teacher.endpoint")
    model = _text(raw.get("model"), "teacher.model", 200)
    if not model:
        raise ValidationFailed("Name the teacher's model (an alias of this hub, or the provider's model id).",
                               field="teacher.model")
    out = {"endpoint": endpoint, "model": model,
           "temperature": _float(raw.get("temperature"), "teacher.temperature", 0.0, 2.0, 0.2),
           "requests_per_minute": _int(raw.get("requests_per_minute"), "teacher.requests_per_minute", 1, 10_000, 30),
           "max_tokens": _int(raw.get("max_tokens"), "teacher.max_tokens", 16, 32_768, 1024),
           "price_in_per_mtok": _float(raw.get("price_in_per_mtok"), "teacher.price_in_per_mtok", 0.0, 1000.0, 0.0),
           "price_out_per_mtok": _float(raw.get("price_out_per_mtok"), "teacher.price_out_per_mtok", 0.0, 1000.0,
                                        0.0)}
    if endpoint == "provider":
        from apps.proxy.models import Provider

        pid = _int(raw.get("provider_id"), "teacher.provider_id", 1, 2**63 - 1, None)
        provider = Provider.objects.filter(pk=pid).first() if pid else None
        if provider is None:
            raise ValidationFailed("Choose a provider (Providers page).", field="teacher.provider_id")
        if not provider.enabled:
            raise ValidationFailed(f"The provider {provider.name} is disabled.", field="teacher.provider_id")
        if provider.kind != Provider.Kind.OPENAI:
            raise ValidationFailed(f"The provider {provider.name} speaks {provider.kind}'s API; the teacher needs an "
                                   f"OpenAI-compatible one.", field="teacher.provider_id")
        out["provider_id"] = provider.pk
        out["provider_name"] = provider.name
    return out


def parse_options(raw: dict | None) -> dict:
    raw = dict(raw or {})
    test_command = _text(raw.get("test_command"), "test_command", 1000)
    run_tests = _bool(raw.get("run_tests"), "run_tests")
    if run_tests and not test_command:
        raise ValidationFailed("Give the test command to run (e.g. `python -m pytest -x -q`).", field="test_command")
    if test_command and not run_tests:
        raise ValidationFailed("Running the repository's tests executes its code: tick “Run the tests” to opt in, "
                               "or leave the command empty.", field="run_tests")
    opts = {
        "generators": parse_generators(raw.get("generators")),
        "max_examples": _int(raw.get("max_examples"), "max_examples", 1, MAX_MAX, DEFAULT_MAX),
        "seed": _int(raw.get("seed"), "seed", 0, 2**31 - 1, 0),
        "include_tests": _bool(raw.get("include_tests", True), "include_tests"),
        "include_config": _bool(raw.get("include_config"), "include_config"),
        "exclude_complex": _bool(raw.get("exclude_complex"), "exclude_complex"),
        "run_tests": run_tests,
        "test_command": test_command if run_tests else "",
        "test_timeout": _int(raw.get("test_timeout"), "test_timeout", 1, 3600, 60),
        "max_test_runs": _int(raw.get("max_test_runs"), "max_test_runs", 1, 1000, 50),
        "teacher": parse_teacher(raw.get("teacher")),
    }
    if "mutation" not in opts["generators"] and opts["run_tests"]:
        opts["notes"] = ["The test command only checks mutations: add the `mutation` generator to use it."]
    return opts


# -- estimate -------------------------------------------------------------------------------------------------
def _candidates(totals: dict, opts: dict) -> dict[str, int]:
    """Rough upper bounds of what each generator can make, from the analysis."""
    comp = totals.get("components") or {}
    functions = (totals.get("complexity") or {}).get("functions") or comp.get("functions") or 0
    commits = (totals.get("history") or {}).get("commits") or 0
    tests = comp.get("tests") or 0
    docs = comp.get("docs") or 0
    per = {"docstring": int(functions * 0.35), "fim": functions, "commit": min(commits, 500) // 2,
           "tests_to_impl": tests, "impl_to_tests": tests, "mutation": int(functions * 0.3),
           "docs_qa": docs * 4, "tasks": max(1, functions // 20)}
    if opts.get("run_tests"):
        per["mutation"] = min(per["mutation"], opts.get("max_test_runs") or 50)
    return {g: per.get(g, functions // 4) for g in opts["generators"]}


def estimate(*, analysis_totals: dict | None, options: dict) -> dict:
    """Expected scenarios, tokens, time and costs before launch (see the module docstring)."""
    totals = analysis_totals or {}
    per = _candidates(totals, options)
    possible = sum(per.values())
    n = min(options["max_examples"], possible) if totals else options["max_examples"]
    # Most scenarios carry a whole code file twice (as context in the query, complete in the answer), and the
    # generators pick files by their functions, so bigger files more often: lines per file of the main
    # language × 2 × SIZE_BIAS (measured on this hub's own code: 3 100 tokens estimated, 3 100 counted).
    langs = totals.get("languages") or {}
    main = max(langs.values(), key=lambda v: v.get("loc", 0), default={})
    files = main.get("files") or totals.get("files_total") or 0
    loc = main.get("loc") or totals.get("loc_total") or 0
    lines_per_file = (loc / files) if files else 120
    tokens_per_example = int(PROMPT_OVERHEAD_TOKENS + min(lines_per_file, 600) * TOKENS_PER_LINE * 2 * SIZE_BIAS)
    tokens = n * tokens_per_example
    seconds = (totals.get("duration_s") or 0) + n / EXAMPLES_PER_S + n / SAVE_EXAMPLES_PER_S
    test_s = 0.0
    if options.get("run_tests") and "mutation" in options["generators"]:
        test_s = (options["max_test_runs"] + 1) * options["test_timeout"] / 3  # a passing run takes a part of it
    out = {"scenarios": n, "possible": possible, "by_generator": per, "tokens_per_scenario": tokens_per_example,
           "total_tokens": tokens, "seconds": max(1.0, round(seconds + test_s, 1)), "test_seconds": round(test_s, 1),
           "based_on_analysis": bool(totals)}
    from apps.datasets.validation.pipeline import estimates as training_estimates

    out["training"] = training_estimates(tokens=tokens, context_length=None, epochs=3)
    teacher = options.get("teacher")
    if teacher:
        out_tokens = min(teacher["max_tokens"], TEACHER_OUTPUT_TOKENS) * n
        in_tokens = tokens
        cost = in_tokens / 1e6 * teacher["price_in_per_mtok"] + out_tokens / 1e6 * teacher["price_out_per_mtok"]
        t_seconds = n / teacher["requests_per_minute"] * 60
        out["teacher"] = {"requests": n, "input_tokens": in_tokens, "output_tokens": out_tokens,
                          "cost_usd": round(cost, 4), "seconds": round(t_seconds, 1)}
        out["seconds"] = round(out["seconds"] + t_seconds, 1)
    out["price_per_mtok"] = getattr(settings, "TOGETHER_PRICE_PER_MTOK", 0.0)
    return out
