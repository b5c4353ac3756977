"""What a grow run builds: the target's dimensions (a named size, "next", or explicit dims) checked against the
source model's config, and the index maps the expansion follows. Pure Python (no torch), so the service checks a
run before launch with the same rules the engine applies. Knows nothing of Django.

Contract: `parse_target(value)` reads a `target_size` value (a named size, "next", or an object of dims) into a
normalized str | dict, or returns the message for the user; `source_dims(config)` the dims of a Llama config
(dict); `grow_plan(config, target)` returns a `GrowPlan` (source, target, the hidden multiple k, the head-size
multiple r, the named size it resolved to) or raises `GrowError` with the message a user sees (a 422 on
`hyperparameters.target_size` before launch). `parameters(dims, vocab_size, tied=)` counts a Llama model's
parameters. `describe(dims)` is the one-line text of a size.

The constraints, each with its reason (see also README "Growing a model"):
- Llama architecture without biases (what method scratch builds);
- every dimension at least the source's, and at least one larger;
- hidden_size a whole multiple k of the source's: each hidden unit is copied k times, which keeps RMSNorm's mean
  square exactly (any other ratio changes it);
- the head size (hidden_size / num_attention_heads, or head_dim) a whole multiple r of the source's: a head of
  size r·d holds the source head's rotary pairs at every r-th frequency (RoPE's frequencies for r·d include
  those for d), so r > 1 needs the default rotary type;
- num_key_value_heads at least the source's, and at least as many query heads per key/value head (each new
  head copies a source head of the same group).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workers.engine.tiny import NAMED_SIZES

DIM_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "num_key_value_heads",
            "head_dim")
ALIASES = {"hidden": "hidden_size", "layers": "num_hidden_layers", "intermediate": "intermediate_size",
           "heads": "num_attention_heads", "kv_heads": "num_key_value_heads"}
NEXT = "next"  # the smallest named size the source can grow into
MAX_DIM = 1_048_576
_LABELS = {"hidden_size": "hidden", "num_hidden_layers": "layers", "intermediate_size": "intermediate",
           "num_attention_heads": "heads", "num_key_value_heads": "key/value heads", "head_dim": "head size"}


class GrowError(ValueError):
    """A target the source cannot be grown into, or a grown model that does not match its source."""


@dataclass(frozen=True)
class GrowPlan:
    source: dict
    target: dict
    k: int  # hidden multiple
    r: int  # head-size multiple
    size_name: str = ""  # the named size it resolved to ("" for explicit dims)
    notes: list[str] = field(default_factory=list)

    @property
    def stored_target(self) -> str | dict:
        """What a run stores as its effective target_size: the named size, or every dim."""
        return self.size_name or {k: self.target[k] for k in DIM_KEYS}


def parse_target(value) -> tuple[str | dict | None, str | None]:
    """(normalized value, None) or (None, message)."""
    if isinstance(value, str):
        name = value.strip()
        if name == NEXT or name in NAMED_SIZES:
            return name, None
        return None, f"Unknown size; choose one of {', '.join((NEXT, *NAMED_SIZES))}, or give the dims as an object."
    if not isinstance(value, dict) or not value:
        return None, ("A named size or an object of dims such as {\"hidden_size\": 128, \"num_hidden_layers\": 4, "
                      "\"intermediate_size\": 512, \"num_attention_heads\": 4}.")
    out: dict[str, int] = {}
    for key, dim in value.items():
        name = ALIASES.get(key, key)
        if name not in DIM_KEYS:
            return None, f"Unknown dimension {key!r}; use {', '.join(DIM_KEYS)}."
        if isinstance(dim, bool) or not isinstance(dim, (int, float, str)):
            return None, f"{key} must be a whole number."
        try:
            num = float(dim)
        except ValueError:
            return None, f"{key} must be a whole number."
        if num != int(num) or not 1 <= num <= MAX_DIM:
            return None, f"{key} must be a whole number from 1 to {MAX_DIM}."
        out[name] = int(num)
    return out, None


def source_dims(config: dict) -> dict:
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    return {"hidden_size": hidden, "num_hidden_layers": int(config["num_hidden_layers"]),
            "intermediate_size": int(config["intermediate_size"]), "num_attention_heads": heads,
            "num_key_value_heads": int(config.get("num_key_value_heads") or heads),
            "head_dim": int(config.get("head_dim") or hidden // heads)}


def describe(dims: dict) -> str:
    text = (f"hidden {dims['hidden_size']} · {dims['num_hidden_layers']} layers · {dims['num_attention_heads']} heads"
            f" of {dims['head_dim']}")
    if dims.get("num_key_value_heads", dims["num_attention_heads"]) != dims["num_attention_heads"]:
        text += f" ({dims['num_key_value_heads']} key/value)"
    return text + f" · intermediate {dims['intermediate_size']}"


def parameters(dims: dict, vocab_size: int, *, tied: bool = True) -> int:
    h, d = dims["hidden_size"], dims["head_dim"]
    attn = h * dims["num_attention_heads"] * d * 2 + h * dims["num_key_value_heads"] * d * 2
    per_layer = attn + 3 * h * dims["intermediate_size"] + 2 * h
    return vocab_size * h * (1 if tied else 2) + dims["num_hidden_layers"] * per_layer + h


def _target_dims(src: dict, target: str | dict) -> dict:
    group = src["num_attention_heads"] // src["num_key_value_heads"]
    given = dict(NAMED_SIZES[target]) if isinstance(target, str) else dict(target)
    dims = {k: given.get(k, src[k]) for k in ("hidden_size", "num_hidden_layers", "intermediate_size",
                                               "num_attention_heads")}
    if "head_dim" in given:
        dims["head_dim"] = given["head_dim"]
    elif "hidden_size" in given or "num_attention_heads" in given:
        if dims["hidden_size"] % dims["num_attention_heads"]:
            raise GrowError(f"hidden_size {dims['hidden_size']} is not divisible by num_attention_heads "
                            f"{dims['num_attention_heads']}; give head_dim or other heads.")
        dims["head_dim"] = dims["hidden_size"] // dims["num_attention_heads"]
    else:
        dims["head_dim"] = src["head_dim"]
    if "num_key_value_heads" in given:
        dims["num_key_value_heads"] = given["num_key_value_heads"]
    elif dims["num_attention_heads"] % group == 0:  # keep the source's query heads per key/value head
        dims["num_key_value_heads"] = dims["num_attention_heads"] // group
    else:
        raise GrowError(f"num_attention_heads {dims['num_attention_heads']} is not a multiple of the model's "
                        f"{group} query heads per key/value head; give num_key_value_heads.")
    return dims


def _check_architecture(config: dict) -> None:
    kind = config.get("model_type")
    if kind != "llama":
        raise GrowError(f"Grow works on Llama-architecture models (what method scratch builds); this model is "
                        f"{kind or 'of an unknown type'}.")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise GrowError("Grow works on Llama models without biases (what method scratch builds).")


def _check(src: dict, dims: dict, config: dict) -> tuple[int, int]:
    smaller = [f"{_LABELS[k]} {dims[k]} < {src[k]}" for k in DIM_KEYS if dims[k] < src[k]]
    if smaller:
        raise GrowError(f"The target is smaller than the model ({', '.join(smaller)}): grow only adds width and "
                        f"depth. The model is {describe(src)}.")
    if all(dims[k] == src[k] for k in DIM_KEYS):
        raise GrowError(f"The target is the model's own size ({describe(src)}); choose a larger one.")
    h, h2 = src["hidden_size"], dims["hidden_size"]
    if h2 % h:
        raise GrowError(f"hidden_size {h2} is not a whole multiple of the model's {h}: each hidden unit is copied "
                        f"k times so that RMSNorm's mean square stays exact (use {2 * h}, {3 * h}, {4 * h}, ...).")
    d, d2 = src["head_dim"], dims["head_dim"]
    if d2 % d:
        raise GrowError(f"The head size {d2} (hidden_size / num_attention_heads) is not a whole multiple of the "
                        f"model's {d}: a grown head keeps the source head's rotary frequencies only at a multiple "
                        f"of its size.")
    rope = (config.get("rope_parameters") or config.get("rope_scaling") or {}).get("rope_type", "default")
    if d2 != d and rope not in ("default", None):
        raise GrowError(f"Growing the head size needs the default rotary embedding; this model uses {rope!r}. "
                        f"Keep the head size {d} (more heads instead).")
    kv, kv2 = src["num_key_value_heads"], dims["num_key_value_heads"]
    heads2 = dims["num_attention_heads"]
    if heads2 % kv2:
        raise GrowError(f"num_attention_heads {heads2} is not a multiple of num_key_value_heads {kv2}.")
    if heads2 // kv2 < src["num_attention_heads"] // kv:
        raise GrowError(f"Fewer query heads per key/value head ({heads2 // kv2}) than the model's "
                        f"({src['num_attention_heads'] // kv}): every source head must be copied into a group "
                        f"that shares its key/value head.")
    return h2 // h, d2 // d


def grow_plan(config: dict, target: str | dict) -> GrowPlan:
    """Resolve and check `target` against the source `config` (a Llama config as a dict)."""
    _check_architecture(config)
    src = source_dims(config)
    if target == NEXT:
        for name in NAMED_SIZES:
            try:
                plan = grow_plan(config, name)
            except GrowError:
                continue
            return plan
        raise GrowError(f"No named size is a growth of this model ({describe(src)}) that keeps its function "
                        f"exactly; give the dims, e.g. {{\"hidden_size\": {2 * src['hidden_size']}, "
                        f"\"num_hidden_layers\": {2 * src['num_hidden_layers']}}}.")
    if not (isinstance(target, str) and target in NAMED_SIZES) and not isinstance(target, dict):
        raise GrowError(f"Unknown target size {target!r}; choose a named size or give the dims.")
    dims = _target_dims(src, target)
    k, r = _check(src, dims, config)
    return GrowPlan(source=src, target=dims, k=k, r=r, size_name=target if isinstance(target, str) else "")
