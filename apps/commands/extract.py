"""The parameters each action's phrasing states (apps.commands.parser picks the action): one function per action,
`(t: T, params, notes) -> None`, filling `params` with what the text says and `notes` with phrases understood but
not used by this hub. Names stay names; apps.commands.services resolves them."""
from __future__ import annotations

import re

from apps.commands.text import NAME, NUMBER, SEP, STOP, T, name_after, num, number, reason, slug_after, version_number
from workers.engine.hyperparameters import BY_NAME

_HP_ALIASES = {  # spoken names of hyperparameters -> the table's names (longest first when matching)
    "learning rate": "learning_rate", "lr": "learning_rate", "batch size": "batch_size",
    "batch": "batch_size", "max steps": "max_steps", "warmup ratio": "warmup_ratio", "warmup": "warmup_ratio",
    "weight decay": "weight_decay", "max seq len": "max_seq_len", "max sequence length": "max_seq_len",
    "sequence length": "max_seq_len", "seq len": "max_seq_len", "context length": "max_seq_len",
    "gradient accumulation steps": "grad_accum", "gradient accumulation": "grad_accum", "grad accum": "grad_accum",
    "lora rank": "lora_r", "lora r": "lora_r", "rank": "lora_r", "lora alpha": "lora_alpha", "alpha": "lora_alpha",
    "lora dropout": "lora_dropout", "dropout": "lora_dropout", "max grad norm": "max_grad_norm",
    "grad norm": "max_grad_norm", "beta": "beta", "loss type": "loss_type", "scheduler": "lr_scheduler",
    "lr scheduler": "lr_scheduler", "save steps": "save_steps", "eval steps": "eval_steps", "seed": "seed",
    "vocab size": "vocab_size", "gpus": "gpus", "epochs": "epochs", "epoch": "epochs",
}
_NUMERIC_HP = tuple(n for n, s in BY_NAME.items() if s.type in ("int", "float"))

_GENERATOR_WORDS = {  # what people call each offline generator (workers.engine.repos.generators)
    "docstring": ("docstrings", "docstring", "comments"),
    "fim": ("fill in the middle", "fill-in-the-middle", "fim", "masked functions", "masked"),
    "commit": ("commits", "commit"),
    "tests_to_impl": ("tests to implementation", "tests_to_impl", "tests to impl", "tdd"),
    "impl_to_tests": ("implementation to tests", "impl_to_tests", "impl to tests", "test writing"),
    "mutation": ("bug fixes", "bug fix", "bugfix", "mutations", "mutation", "bugs"),
    "docs_qa": ("docs q&a", "docs_qa", "docs qa", "documentation", "docs", "q&a"),
    "tasks": ("development tasks", "dev tasks", "tasks"),
    "config": ("config files", "configs"),
}


def _hyperparameters(t: T) -> dict:
    hp: dict = {}
    spoken = sorted(_HP_ALIASES, key=len, reverse=True)
    names = "|".join(re.escape(k) for k in spoken)
    for m in re.finditer(rf"\b({names})\b{SEP}(?P<n>{NUMBER})(?![\w.])", t.low):
        hp.setdefault(_HP_ALIASES[m.group(1)], number(m.group("n")))
    for m in re.finditer(rf"\b({'|'.join(_NUMERIC_HP)})\s*(?:=|:)?\s*(?P<n>{NUMBER})(?![\w.])", t.low):
        hp.setdefault(m.group(1), number(m.group("n")))
    for key, pattern in (("epochs", rf"(?P<n>{NUMBER})\s*(?:full\s+)?epochs?\b"),
                         ("max_steps", r"(?P<n>\d+)\s*(?:training\s+)?steps\b"),
                         ("batch_size", r"(?P<n>\d+)\s*(?:examples\s+)?per\s+batch\b")):
        if key not in hp:
            value = num(t, pattern)
            if value is not None:
                hp[key] = value
    for name in ("lr_scheduler", "loss_type"):
        m = t.find(rf"\b{name.replace('_', '[ _]')}\s*(?:=|:|of|is)?\s*([a-z_]+)")
        if m:
            hp[name] = m.group(1)
    if t.has(r"\bgradient[\s_-]*checkpointing\b"):
        hp["gradient_checkpointing"] = True
    for key, value in list(hp.items()):
        if value is None:
            hp.pop(key)
        elif isinstance(value, float) and value.is_integer() and (BY_NAME[key].type == "int" or key == "epochs"):
            hp[key] = int(value)  # "3 epochs" stays 3, not 3.0
    return hp


def _method(t: T) -> str | None:
    for method, pattern in (("dpo", r"\bdpo\b"), ("kto", r"\bkto\b"), ("grpo", r"\bgrpo\b"),
                            # "grow" is an English word: only as a method ("with grow", "method grow", "grow
                            # version 3 into small", "grow it into tiny"), never a dataset named grow-logs
                            ("grow", r"\b(?:with|using|via|method\s*(?:=|:|is)?)\s+grow\b(?![\w-])|"
                                     r"\bgrow\s+(?:(?:model\s+)?version\s+#?\d+|v\d+|it)\s+(?:into|to)\b|"
                                     r"\bgrow\s+(?:into|to)\s+(?:a\s+)?(?:nano|micro|tiny|small|medium|large)\b"),
                            ("scratch", r"\b(?:from\s+)?scratch\b"),
                            ("full", r"\bfull(?:[\s-]+(?:fine[\s-]?tun\w*|finetun\w*|parameters?|weights|"
                                     r"training|model|run))\b|\bmethod\s*(?:=|:|is)?\s*full\b"),
                            ("lora", r"\bq?lora\b")):
        if t.has(pattern):
            return method
    return None


def _dataset(t: T, verbs: str, params: dict) -> None:
    """The dataset a train or review command names: `on demo`, `dataset demo`, `train demo`, `demo v2`."""
    m = t.find(r"\bdataset[\s_-]*version\s*(?:id\s*)?#?\s*(\d+)\b")
    if m:
        params["dataset_version_id"] = int(m.group(1))
        return
    if t.has(r"\b(?:the\s+)?(?:latest\s+|last\s+|newly\s+)?generated\s+(?:training\s+)?(?:data|dataset|scenarios)\b"):
        params["dataset_generated"] = True
        return
    name = (name_after(t, r"\bdataset")
            or name_after(t, rf"^(?:{verbs})(?:\s+(?:on|of|for))?(?:\s+the)?")
            or name_after(t, r"\b(?:on|using|with|of|for)(?:\s+the)?(?:\s+dataset)?",
                           stop=STOP | {"rating", "overlap"}))
    if name:
        params["dataset"] = name
        n = version_number(t, name)
        if n:
            params["dataset_version"] = n


def _train(t: T, p: dict, notes: list) -> None:
    base = (name_after(t, r"\bbase[\s_-]*model(?:\s*(?:=|:|is))?")
            or name_after(t, r"\b(?:model|on\s+top\s+of|starting\s+from)", require=r"[/:]|\d")
            or name_after(t, r"^(?:train|fine[\s-]?tune|finetune)", require=r"/"))
    if base:
        p["base_model"] = base
    _dataset(t, r"train|fine[\s-]?tune|finetune|retrain|start\s+training\s+on|start\s+a\s+run\s+on", p)
    if base and p.get("dataset") == base:
        p.pop("dataset")
        p.pop("dataset_version", None)
    method = _method(t)
    if method:
        p["method"] = method
    hp = _hyperparameters(t)
    if hp:
        p["hyperparameters"] = hp
    suffix = name_after(t, r"\bsuffix")
    if suffix:
        p.setdefault("hyperparameters", {})["suffix"] = suffix
    name = name_after(t, r"\b(?:named|called|run\s+name)")
    if name:
        p["name"] = name
    if t.has(r"\b(?:on|via|with|using)\s+together(?:\.ai|ai)?\b|\btogether\.ai\b|\bremotely\b"):
        p["backend"] = "together"
    elif t.has(r"\blocal(?:ly)?\b"):
        p["backend"] = "local"
    m = t.find(r"\bcontinu\w*(?:\s+training)?(?:\s+from)?(?:\s+(?:model|the))?\s+(?:version\s*#?|mv-?|v)(\d+)\b")
    if m:
        p["parent_version_id"] = int(m.group(1))
    if t.has(r"\ballow(?:ing)?\s+truncation\b|\btruncate\b"):
        p["allow_truncation"] = True


def _generate(t: T, p: dict, notes: list) -> None:
    m = t.find(r"(https?://\S+|git@\S+)")
    if m:
        p["source_url"] = t.orig[m.start(1):m.end(1)].rstrip(".,;")
    else:
        source = (name_after(t, r"\b(?:repo(?:sitory)?|source|project|codebase)")
                  or name_after(t, r"\b(?:from|for|of|in)(?:\s+the)?(?:\s+(?:repo(?:sitory)?|source|project))?",
                                 stop=STOP | {"tests", "config", "complex", "workspace", "output"}))
        if source and not source.startswith(("./", "../")):
            p["source"] = source
    value = num(t, r"\bmax(?:imum)?(?:\s+of)?\s+(?P<n>\d+)\s*(?:scenarios?|examples?)\b") \
        or num(t, rf"\bmax(?:imum)?[\s_-]*(?:scenarios?|examples?){SEP}(?P<n>\d+)\b") \
        or num(t, r"\b(?:up\s+to|at\s+most|limit(?:\s+of)?)\s+(?P<n>\d+)\b") \
        or num(t, r"\b(?P<n>\d+)\s+(?:scenarios?|examples?)\b")
    if value:
        p["max_examples"] = int(value)
    for key, word in (("include_tests", "tests?"), ("include_config", "config(?:uration)?s?")):
        if t.has(rf"\b(?:exclude|without|no|skip)\s+{word}\b"):
            p[key] = False
        elif t.has(rf"\b(?:include|with|including)\s+{word}\b"):
            p[key] = True
    if t.has(r"\bexclude\s+complex\b|\bsimple\s+only\b|\bonly\s+simple\b|\bno\s+complex\b"):
        p["exclude_complex"] = True
    if t.has(r"\brun\s+(?:the\s+)?tests\b"):
        p["run_tests"] = True
    seed = num(t, r"\bseed\s*(?:=|:|of)?\s*(?P<n>\d+)\b")
    if seed is not None:
        p["seed"] = int(seed)
    m = t.find(r"\b(?:categories|category|generators?|only)\b([^.;]*)")
    if m:
        chosen = []
        clause = m.group(1)
        for gen, words in _GENERATOR_WORDS.items():
            if any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", clause) for w in words) and gen not in chosen:
                chosen.append(gen)
        if chosen:
            p["generators"] = chosen
    teacher = name_after(t, r"\bteacher(?:\s+model)?")
    if teacher:
        p["teacher"] = {"endpoint": "hub", "model": teacher}
        temp = num(t, rf"\btemp(?:erature)?{SEP}(?P<n>{NUMBER})")
        if temp is not None:
            p["teacher"]["temperature"] = temp
    elif t.has(r"\btemp(?:erature)?\b"):
        notes.append("temperature: the offline generators are deterministic; it applies to a teacher model only "
                     "(add `teacher <alias>`).")
    for word, why in (("workspace", "the hub keeps its own working copies of a source's repositories"),
                      ("output", "generated scenarios become a new version of the source's dataset"),
                      ("clean ?up", "the hub removes its clones when the source is deleted")):
        if t.has(rf"\b{word}\b"):
            notes.append(f"{word.replace(' ?', ' ')}: not needed here ({why}).")


def _status(t: T, p: dict, notes: list) -> None:
    m = t.find(r"\b(ft-[\w-]+)\b") or t.find(r"\bjob\s+(?:id\s+)?([a-z][\w]*-[\w-]+)")
    if m:
        p["remote_job_id"] = t.orig[m.start(1):m.end(1)]
        return
    for key, pattern in (("run_id", r"\brun\s*(?:id\s*)?#?\s*(\d+)\b"), ("job_id", r"\bjob\s*(?:id\s*)?#?\s*(\d+)\b"),
                         ("generation_id", r"\bgeneration\s*#?\s*(\d+)\b"), ("run_id", r"(?:^|\s)#(\d+)\b")):
        m = t.find(pattern)
        if m:
            p[key] = int(m.group(1))
            return
    if t.has(r"\b(?:latest|last|most\s+recent|newest|current)\b"):
        p["latest"] = True
        return
    name = name_after(t, r"\b(?:run|of|for)(?:\s+the)?(?:\s+run)?", stop=STOP | {"all", "everything", "runs"})
    if name:
        p["run_name"] = name


def _model_version(t: T, p: dict, *, verb: str) -> None:
    m = t.find(r"\b(?:model\s+)?version\s*(?:id\s*)?#?\s*(\d+)\b|\bmv-?(\d+)\b|\bv(\d+)\b|\bmodel\s*#\s*(\d+)\b"
               r"|\bmodel\s+(\d+)\b")
    if m:
        p["version_id"] = int(next(g for g in m.groups() if g))
        return
    m = t.find(r"\b(?:from\s+)?run\s*#?\s*(\d+)\b")
    if m:
        p["run_id"] = int(m.group(1))
        return
    if t.has(r"\b(?:latest|newest|last|most\s+recent)\s+(?:trained\s+)?(?:model|version)\b|\bmy\s+trained\s+model\b"
             r"|\bthe\s+trained\s+model\b"):
        p["latest"] = True
        return
    name = name_after(t, rf"^{verb}(?:\s+the)?(?:\s+model)?", stop=STOP | {"canary"})
    if name:
        p["version_name"] = name


def _deploy(t: T, p: dict, notes: list) -> None:
    reasonless = T(t.orig.split(" because ")[0])
    _model_version(reasonless, p, verb=r"(?:deploy|promote|ship|release|publish)")
    alias = (slug_after(reasonless, r"\bto(?:\s+the)?(?:\s+alias)?", stop=STOP | {"a", "an", "canary"})
             or slug_after(reasonless, r"\b(?:as|alias)(?:\s+the)?", stop=STOP | {"a", "an", "canary"}))
    if alias:
        p["alias"] = alias
    if t.has(r"\bcanary\b"):
        pct = num(t, r"(?P<n>\d{1,2})\s*(?:%|percent)")
        p["canary"] = True
        if pct is not None:
            p["canary_percent"] = int(pct)
    reason(t, p)


def _rollback(t: T, p: dict, notes: list) -> None:
    reasonless = T(t.orig.split(" because ")[0])
    alias = (slug_after(reasonless, r"\b(?:roll(?:ed)?[\s-]*back|rollback|revert)(?:\s+the)?(?:\s+alias)?",
                         stop=STOP | {"to"})
             or slug_after(reasonless, r"\broll", stop=STOP | {"to"})
             or slug_after(reasonless, r"\balias"))
    if alias:
        p["alias"] = alias
    m = reasonless.find(r"\bto\s+(?:the\s+)?(?:model\s+)?(?:version\s*#?\s*|mv-?|v)(\d+)\b")
    if m:
        p["to_version_id"] = int(m.group(1))
    m = reasonless.find(r"\bto\s+(?:the\s+)?deployment\s*#?\s*(\d+)\b")
    if m:
        p["to_deployment_id"] = int(m.group(1))
    reason(t, p)


def _configure(t: T, p: dict, notes: list) -> None:
    if t.has(r"\b(?:auto[\s-]?coder|reasoning(?:\s+proxy)?)\b"):
        p["alias_hint"] = "auto-coder"
    m = t.find(r"\bfall[\s-]?back(?:\s+model)?(?:\s+(?:to|=|:|is|of))?(?:\s+(?:the\s+)?model)?\s+" + NAME)
    if m:
        value = t.name(m, 1)
        if value.lower() not in STOP:
            p["fallback"] = value
            prov = t.find(r"\bfall[\s-]?back\b.*?\b(?:on|via|from|at)\s+([a-z0-9][\w.-]*)")
            if prov:
                p["fallback_provider"] = t.orig[prov.start(1):prov.end(1)]
    stop = STOP | {"a", "an", "requests"} | {str(p.get(k, "")).lower() for k in ("fallback", "fallback_provider")}
    alias = (slug_after(t, r"\balias", stop=stop)
             or slug_after(t, r"\bfor(?:\s+the)?(?:\s+alias)?", stop=stop)
             or slug_after(t, r"\b(?:of|on)(?:\s+the)?(?:\s+alias)?", stop=stop)
             or slug_after(t, r"^(?:configure|config|setup|set\s+up|set|change|update)(?:\s+the)?", stop=stop))
    if alias:
        p["alias"] = alias
    temp = num(t, rf"\btemp(?:erature)?{SEP}(?P<n>{NUMBER})")
    if temp is not None:
        p["temperature"] = temp
    tokens = num(t, rf"\bmax[\s_-]*(?:output\s+)?tokens?{SEP}(?P<n>\d+)\b") or \
        num(t, r"\b(?P<n>\d+)\s+max(?:imum)?\s+tokens\b")
    if tokens is not None:
        p["max_tokens"] = int(tokens)
    m = t.find(rf"\btime[\s-]?out{SEP}(?P<n>{NUMBER})\s*(?P<u>ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)?\b")
    if m:
        value, unit = number(m.group("n")), (m.group("u") or "")
        if value is not None:
            if unit == "ms" or unit.startswith("milli") or (not unit and value > 600):
                value /= 1000  # the seed's REASONING_TIMEOUT is in milliseconds (30000)
            elif unit.startswith("m"):
                value *= 60
            p["timeout_s"] = value
    m = t.find(r"\buse\s+(?:the\s+)?(?:model\s+)?(my\s+trained\s+model|(?:latest|newest)\s+(?:trained\s+)?model"
               r"|(?:version\s*#?\s*|mv-?)\d+)")
    if m:
        digits = re.search(r"\d+", m.group(1))
        p["use"] = {"version_id": int(digits.group())} if digits else {"latest": True}
    m = t.find(r"\bsystem\s+(?:prompt|prefix)\s*(?:=|:|to)?\s*(?:\"([^\"]*)\"|'([^']*)'|“([^”]*)”)")
    if m:
        g = next(i for i in (1, 2, 3) if m.group(i) is not None)
        p["system_prefix"] = t.orig[m.start(g):m.end(g)]


def _review(t: T, p: dict, notes: list) -> None:
    _dataset(t, r"review|start\s+(?:a\s+)?review\s+(?:of|on|for)|create\s+(?:a\s+)?review\s+(?:of|on|for)", p)
    m = t.find(r"\b(?:assign(?:ed)?\s+to|assignees?|reviewers?|by|with)\s+(@?[a-z0-9][\w.@+-]*"
               r"(?:\s*(?:,|&|\band\b)\s*@?[a-z0-9][\w.@+-]*)*)")
    if m:
        names = [n.lstrip("@") for n in re.split(r"\s*(?:,|&|\band\b)\s*", t.orig[m.start(1):m.end(1)]) if n]
        names = [n for n in names if n.lower() not in STOP and number(n) is None]
        if names:
            p["assignees"] = list(dict.fromkeys(names))
    overlap = num(t, r"\boverlap\s*(?:=|:|of)?\s*(?P<n>\d+)\b") or num(t, r"\b(?P<n>\d+)\s+reviewers?\s+(?:per|each)")
    if overlap:
        p["overlap"] = int(overlap)
    if t.has(r"\brating\b|\bratings\b"):
        p["rating"] = True
    name = name_after(t, r"\b(?:named|called)")
    if name:
        p["name"] = name
    m = t.find(r"\blabels?\s+([\w-]+(?:\s*,\s*[\w-]+)*)")
    if m:
        p["labels"] = [s.strip() for s in t.orig[m.start(1):m.end(1)].split(",") if s.strip()]


def _cancel(t: T, p: dict, notes: list) -> None:
    _status(t, p, notes)  # the same references: run 12, job ft-abc123, the latest run, a run's name


PARSERS = {"generate": _generate, "train": _train, "status": _status, "deploy": _deploy, "rollback": _rollback,
            "configure": _configure, "review": _review, "cancel": _cancel}
