"""Exports of a SmolLM2-135M-Instruct LoRA version: time the merge, the conversion and the quantization, measure the
peak memory, and print the round-trip checks (perplexity difference, greedy agreement) of each export.

On a throwaway SQLite database and artifact root (nothing of var/ is touched): the prepared SmolLM2 base from the
model cache, a LoRA version on it (r=8 on q/k/v/o, B ~ N(0, --lora-std): a stand-in for a fine-tune), and its exports
trained (by its lineage) on the bundled demo dataset, whose last --validation examples are the check prompts, and its
exports in this order: gguf q8_0 (merges on its own), merged, gguf f16, gguf q4_k_m (both start from the merged export), each
run by the real job in this process (`manage.py export_model` does the same). The source's reference answers are
measured once and cached, as in production.

`HUB_MODEL_CACHE=... .venv/bin/python bench/bench_exports.py [--lora-std 0.02] [--formats gguf:q8_0,merged,...]`
Needs llama.cpp built (toolchain.find) for the GGUF rows."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_adapter(base_dir: Path, out_dir: Path, std: float) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, std)
    model.save_pretrained(out_dir)
    return out_dir


def demo_dataset(user, n_validation: int):
    """The bundled demo dataset (tabletop game chats) as a ready version whose last `n_validation` examples are its
    validation split (the prompts of the round-trip checks)."""
    import hashlib

    from apps.datasets.models import Dataset, DatasetVersion, Example

    rows = [json.loads(line) for line in (ROOT / "apps/datasets/demo/demo.jsonl").read_text().splitlines() if line]
    ds = Dataset.objects.create(name="demo", owner=user)
    dv = DatasetVersion.objects.create(dataset=ds, number=1, status="ready", format="chat-jsonl",
                                       example_count=len(rows), validation={"errors": [], "warnings": []})
    Example.objects.bulk_create([
        Example(version=dv, index=i, messages=r["messages"], tools=r.get("tools"),
                split="validation" if i >= len(rows) - n_validation else "train",
                content_hash=hashlib.sha256(json.dumps(r).encode()).hexdigest()) for i, r in enumerate(rows)])
    return dv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lora-std", type=float, default=0.02)
    ap.add_argument("--formats", default="gguf:q8_0,merged,gguf:f16,gguf:q4_k_m")
    ap.add_argument("--validation", type=int, default=16, help="demo examples held out as validation prompts (0: "
                                                                 "the version has no dataset: fixed prompts)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="hub-bench-exports-"))
    os.environ.pop("REDIS_URL", None)
    os.environ.update(HUB_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="training_hub.settings",
                      DATABASE_URL=f"sqlite:///{data_dir / 'db.sqlite3'}")
    import django
    from django.conf import settings

    django.setup()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from django.core.management import call_command

    from apps.accounts.models import User
    from apps.registry.exports import services
    from apps.registry.exports.checks import summary
    from apps.registry.services import base_model_register, model_version_register
    from workers.engine.llamacpp import toolchain

    base_dir = Path(settings.HUB_MODEL_CACHE) / "smollm2-135m-instruct"
    if not (base_dir / "config.json").is_file():
        print(f"SmolLM2 is not prepared in {base_dir}: run `make setup` (or manage.py prepare_base_model)")
        return 2
    tc = toolchain.find(model_cache=Path(settings.HUB_MODEL_CACHE))
    print(f"llama.cpp: {tc.version + ' at ' + str(tc.bin_dir) if tc else 'not built (GGUF rows skipped)'}")
    try:
        call_command("migrate", verbosity=0)
        user = User.objects.create_user("admin", password="pw-123456", role="admin")
        base = base_model_register(model_id="smollm2", path=str(base_dir))
        adapter = make_adapter(base_dir, data_dir / "adapter", args.lora_std)
        dv = demo_dataset(user, args.validation) if args.validation else None
        version = model_version_register(name="smollm2 lora", kind="adapter", base_model=base, source_dir=adapter,
                                         created_by=user, dataset_version=dv)
        rows = []
        for spec in args.formats.split(","):
            fmt, _, quant = spec.partition(":")
            if fmt == "gguf" and tc is None:
                continue
            t0 = time.perf_counter()
            export = services.export_create(actor=user, model_version_id=version.pk, format=fmt,
                                            quantization=quant or None, inline=True)
            wall = time.perf_counter() - t0
            t, c = export.timings or {}, export.checks or {}
            rows.append({"export": spec, "status": export.status, "size_mb": round((export.size_bytes or 0) / 2**20, 1),
                         "wall_s": round(wall, 1), **{k: t.get(k) for k in ("merge_s", "convert_s", "quantize_s",
                                                                             "check_s", "reference_s", "peak_rss_mb")},
                         "ppl_source": (c.get("perplexity") or {}).get("source"),
                         "ppl_export": (c.get("perplexity") or {}).get("export"),
                         "ppl_delta_pct": (c.get("perplexity") or {}).get("delta_pct"),
                         "greedy_identical": f"{(c.get('greedy') or {}).get('identical')}/{c.get('prompts')}",
                         "greedy_agreement": c.get("greedy_agreement"), "reasons": c.get("reasons"),
                         "error": export.error[:300] if export.error else None})
            print(f"{spec:>12}: {export.status} in {wall:.1f} s · {summary(c)}" + (f" · {export.error[:200]}"
                                                                                   if export.error else ""))
        print(json.dumps(rows, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"kept {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
