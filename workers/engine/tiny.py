"""Tiny Llama-style models built from a config, with a BPE tokenizer trained on the spot.

Used by tests (seconds on CPU) and by "from scratch" training. Knows nothing of Django.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + (message['content'] or '') + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]

# Named sizes for from-scratch models (hidden, layers, heads, intermediate).
NAMED_SIZES: dict[str, dict] = {
    "nano": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
    "micro": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
    "tiny": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=1024),
    "small": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=2048),
    "medium": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}

_FALLBACK_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b",
    "User asks a question and the assistant answers it clearly.",
    "Roll for initiative! The goblin attacks with a rusty sword.",
]


def train_bpe_tokenizer(texts: Iterable[str], out_dir: Path, *, vocab_size: int = 512, context_length: int = 512):
    """Train a byte-level BPE tokenizer on `texts` and save it as a transformers fast tokenizer
    with ChatML special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts) or _FALLBACK_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<pad>",
        unk_token=None, model_max_length=context_length,
    )
    fast.chat_template = CHATML_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def build_model(out_dir: Path, *, size: str | dict = "nano", texts: Iterable[str] = (), vocab_size: int = 512,
                context_length: int = 512, seed: int = 0) -> dict:
    """Build a randomly initialised Llama-style causal LM + tokenizer in `out_dir` (a Hugging Face
    model folder). Returns a description with the parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dims = NAMED_SIZES[size] if isinstance(size, str) else dict(size)
    out_dir = Path(out_dir)
    tokenizer = train_bpe_tokenizer(texts, out_dir, vocab_size=vocab_size, context_length=context_length)
    heads = dims["num_attention_heads"]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=context_length,
        num_key_value_heads=dims.get("num_key_value_heads", heads),
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **{k: v for k, v in dims.items() if k != "num_key_value_heads"},
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    info = {
        "name": out_dir.name,
        "architecture": "LlamaForCausalLM",
        "parameters": sum(p.numel() for p in model.parameters()),
        "context_length": context_length,
        "hidden_size": dims["hidden_size"],
        "has_chat_template": True,
    }
    (out_dir / "hub_base_model.json").write_text(json.dumps(info, indent=2))
    return info


def count_parameters(size: str, vocab_size: int) -> int:
    """Parameter count of a named size without building it (shown before launch)."""
    d = NAMED_SIZES[size]
    h, n_layers, inter = d["hidden_size"], d["num_hidden_layers"], d["intermediate_size"]
    per_layer = 4 * h * h + 3 * h * inter + 2 * h
    return vocab_size * h + n_layers * per_layer + h
