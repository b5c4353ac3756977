"""Benchmark: validating a generated 200k-example chat JSONL (~140 MB).

Measures, each in its own subprocess (so peak RSS is per measurement):
  1. Together's client-side checker (`together.utils.files.check_file`, together==1.5.35), if installed;
  2. the hub's structural pass (`validate_dataset --structure-only` path);
  3. the hub's full validation (structure + content/PII + exact & MinHash near duplicates + token counts
     with SmolLM2-135M-Instruct's tokenizer and chat template);
  4. peak memory of the structural and full passes on 50k vs 200k examples (flat = streaming).

Usage: .venv/bin/python bench/bench_validate.py [--examples 200000] [--base-model PATH] [--skip-together]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOGETHER_NO_BANNER", "1")
WORDS = ("the a of to and in is it you that for on with as this be are or was by at from have not function "
         "value list file data model error return class python code test user system training dataset token "
         "dragon goblin sword spell roll initiative dungeon party tavern quest map cave torch shield armor "
         "variable loop string integer array object server request response cache index query table column "
         "branch commit merge deploy config build install package module import export async await promise").split()


def generate(path: Path, n: int, seed: int = 1) -> int:
    """~700-byte chat examples: system/user/assistant, some multi-turn, code blocks, a few e-mails, some
    exact and near duplicates."""
    rng = random.Random(seed)
    prev = None
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            if prev is not None and rng.random() < 0.01:
                fh.write(prev)
                continue

            def sent(k):
                return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."
            user = f"Question {i}: " + " ".join(sent(rng.randint(6, 14)) for _ in range(rng.randint(1, 3)))
            ans = " ".join(sent(rng.randint(8, 18)) for _ in range(rng.randint(3, 7)))
            if rng.random() < 0.2:
                ans += f"\n\n```python\ndef f_{i}(x):\n    return x * {rng.randint(2, 9)}\n```"
            if rng.random() < 0.005:
                ans += f" Contact jane.doe{i}@corp-mail.com for access."
            msgs = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": user}, {"role": "assistant", "content": ans}]
            if rng.random() < 0.3:
                msgs += [{"role": "user", "content": sent(rng.randint(5, 10))},
                         {"role": "assistant", "content": sent(rng.randint(10, 20))}]
            line = json.dumps({"messages": msgs}) + "\n"
            fh.write(line)
            prev = line
    return path.stat().st_size


def _child(mode: str, path: str, base_model: str | None) -> None:
    """Runs in a subprocess: one measurement, prints a JSON line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "training_hub.settings")
    os.environ.setdefault("TOGETHER_NO_BANNER", "1")
    sys.path.insert(0, str(ROOT))
    t0 = time.perf_counter()
    out = {"mode": mode}
    if mode == "together":
        from together.utils.files import check_file

        report = check_file(path)
        out["ok"] = bool(report.get("is_check_passed"))
        out["examples"] = report.get("num_samples")
    else:
        import django

        django.setup()
        from apps.datasets.validation import validate_path
        from apps.datasets.validation.tokens import TokenCounter

        counter = None
        t_load = 0.0
        if mode == "full":
            t1 = time.perf_counter()
            counter = TokenCounter(base_model, context_length=8192, name=Path(base_model).name)
            t_load = time.perf_counter() - t1
        t0 = time.perf_counter()
        r = validate_path(path, structure_only=(mode == "structure"), counter=counter)
        d = r.as_dict()
        out.update(examples=d["examples"], errors=d["error_total"], warnings=d["warning_total"],
                   counts=d["counts"], tokenizer_load_s=round(t_load, 2))
        if mode == "full":
            out["tokens_total"] = r.stats.get("tokens", {}).get("total")
    out["seconds"] = round(time.perf_counter() - t0, 2)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds of the whole child (incl. imports/tokenizer load): independent of other load on the machine
    out["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 1)
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def run(mode: str, path: Path, base_model: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--path", str(path)]
    if base_model:
        cmd += ["--base-model", base_model]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TOGETHER_NO_BANNER": "1"})
    if proc.returncode != 0:
        return {"mode": mode, "failed": proc.stderr.strip()[-800:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def default_base_model() -> str | None:
    cache = Path(os.environ.get("HUB_MODEL_CACHE", "~/.cache/training-hub/models")).expanduser()
    folder = cache / "smollm2-135m-instruct"
    return str(folder) if (folder / "tokenizer.json").exists() else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200_000)
    ap.add_argument("--small", type=int, default=50_000, help="size of the memory comparison file")
    ap.add_argument("--base-model", default=None, help="HF folder whose tokenizer + chat template count tokens")
    ap.add_argument("--skip-together", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the structural comparison (best kept)")
    ap.add_argument("--only", choices=["structure", "full"], help="run only this part")
    ap.add_argument("--child")
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.path, args.base_model)
        return
    base_model = args.base_model or default_base_model()
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        big, small = Path(tmp) / "big.jsonl", Path(tmp) / "small.jsonl"
        t = time.perf_counter()
        size = generate(big, args.examples)
        generate(small, args.small)
        print(f"generated {args.examples} examples, {size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s "
              f"(+ {args.small} for the memory comparison)", flush=True)
        results = {}
        have_together = False
        if not args.skip_together:
            try:
                import together  # noqa: F401
                have_together = True
            except ImportError:
                print("together not installed: baseline skipped (pip install together==1.5.35)")
        # The structural comparison is short and this machine is shared: alternate the two, keep each's best.
        for _ in range(args.repeat if args.only != "full" else 0):
            if have_together:
                r = run("together", big, None)
                if "together" not in results or r.get("seconds", 1e9) < results["together"].get("seconds", 1e9):
                    results["together"] = r
            r = run("structure", big, None)
            if "structure" not in results or r.get("seconds", 1e9) < results["structure"].get("seconds", 1e9):
                results["structure"] = r
        if args.only != "full":
            results["structure_small"] = run("structure", small, None)
        if args.only == "structure":
            pass
        elif base_model:
            results["full"] = run("full", big, base_model)
            results["full_small"] = run("full", small, base_model)
        else:
            print("no base model tokenizer found: full validation skipped (prepare the base model first)")
        print(json.dumps(results, indent=1))
        print(f"load average after the runs: {os.getloadavg()}")
        print("\nsummary")
        for key, r in results.items():
            if "failed" in r:
                print(f"  {key:16} FAILED: {r['failed'][-300:]}")
                continue
            n = r.get("examples") or 0
            print(f"  {key:16} {r['seconds']:7.2f} s  {n / r['seconds'] if r['seconds'] else 0:10.0f} examples/s  "
                  f"cpu {r.get('cpu_s', 0):6.1f} s  load {r.get('load_avg_1m', 0):4.1f}  peak RSS {r['peak_rss_mb']:.0f} MB")
        if "together" in results and "structure" in results and "failed" not in results["together"]:
            ratio = results["together"]["seconds"] / results["structure"]["seconds"]
            print(f"  structural pass vs Together's checker: {ratio:.2f}x as fast")


if __name__ == "__main__":
    main()
