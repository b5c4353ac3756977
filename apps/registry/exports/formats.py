"""The one table of export formats and GGUF quantizations: the API's enums, the page's form, the service's
validation and the docs read it (GGUF types come from workers.engine.llamacpp.convert.QUANTIZATIONS).

Contract: FORMATS[name] = {"label", "help", "kinds" (the version kinds it applies to)}; QUANTIZATIONS[name] =
{"label", "bits", ...}; DEFAULT_QUANTIZATION for a GGUF export that names none; SERVING_QUANTIZATIONS: the GGUF types
recorded in a version's serving manifest (hub_model.json "gguf_path") when their export succeeds."""
from __future__ import annotations

from workers.engine.llamacpp.convert import QUANTIZATIONS

FORMATS: dict[str, dict] = {
    "adapter": {"label": "LoRA adapter", "kinds": ("adapter",),
                "help": "the PEFT adapter folder (adapter_config.json + weights) and the tokenizer; load it on the base"},
    "merged": {"label": "Merged full weights", "kinds": ("adapter", "full"),
               "help": "safetensors (sharded above 2 GB), tokenizer, chat template and generation_config.json"},
    "gguf": {"label": "GGUF (llama.cpp)", "kinds": ("adapter", "full"),
             "help": "one .gguf file made with llama.cpp's converter and quantizer, for llama-server, Ollama, phones"},
}
DEFAULT_QUANTIZATION = "q8_0"
SERVING_QUANTIZATIONS = ("q8_0", "f16")
_ORDER = ("q4_k_m", "q8_0", "f16", "q5_k_m", "q6_k", "q4_0", "bf16", "f32")  # the usual choices first
OFFERED_QUANTIZATIONS = tuple(sorted(QUANTIZATIONS, key=lambda q: _ORDER.index(q) if q in _ORDER else len(_ORDER)))


def choices_text(names) -> str:
    return ", ".join(names)
