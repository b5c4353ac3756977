"""The first seed's bundle, and the generated JSONL passing the hub's own upload validation."""
from __future__ import annotations

import json

from workers.engine.repos import GenerateOptions, analyze, bundle, generate, parse_file_blocks, write_bundle


def test_bundle_files_and_report(sample, tmp_path):
    a = analyze(sample.path, rules=[{"name": "helpers", "glob": "web/**"}])
    r = generate(sample.path, seed=4, options=GenerateOptions(include_config=True))
    files = bundle(r.examples, analysis=a, processing_time_s=1.2345, tasks=r.tasks, skipped=r.skipped,
                   price_per_million_tokens=2.0, epochs=2, metadata={"repo": r.repo, "commit": r.commit, "seed": 4})
    cats = sorted({e["category"] for e in r.examples})
    assert set(files) == {"together-ai-training.jsonl", "training-scenarios.json", "generation-statistics.json",
                          "generation-report.json"} | {f"by-category/{c.replace('_', '-')}-training.jsonl" for c in cats}
    lines = files["together-ai-training.jsonl"].decode().splitlines()
    assert len(lines) == len(r.examples)
    for line in lines:
        row = json.loads(line)
        assert list(row) == ["messages"] and [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert all(set(m) == {"role", "content"} for m in row["messages"])
    assert sum(len(v.decode().splitlines()) for k, v in files.items() if k.startswith("by-category/")) == len(lines)
    rep = json.loads(files["generation-report.json"])
    assert rep["totalScenarios"] == len(r.examples)
    assert rep["scenariosByCategory"] == dict(__import__("collections").Counter(e["category"] for e in r.examples))
    assert set(rep["scenariosByComplexity"]) <= {"simple", "medium", "complex"}
    assert sum(rep["scenariosByComplexity"].values()) == len(r.examples)
    assert rep["filesByLanguage"]["Python"] == 2 and rep["components"]["helpers"] == 1
    chars = sum(len(m["content"]) for e in r.examples for m in e["messages"])
    assert chars / 4 <= rep["totalTokens"] <= chars / 4 + 3 * len(r.examples)
    assert rep["processingTime"] == 1234
    cost = rep["estimatedTrainingCost"]
    assert cost["tokens"] == 2 * rep["totalTokens"] and cost["usd"] == round(cost["tokens"] / 1e6 * 2.0, 4)
    scen = json.loads(files["training-scenarios.json"])
    assert scen["metadata"] == {"totalScenarios": len(r.examples), "repo": r.repo, "commit": r.commit, "seed": 4}
    s0, e0 = scen["scenarios"][0], r.examples[0]
    assert s0["id"] == e0["meta"]["example_id"] and s0["provenance"] == e0["meta"]["provenance"]
    assert s0["files"] == [{"path": p, "content": c} for p, c in parse_file_blocks(e0["messages"][2]["content"])]
    assert s0["thinking"] and s0["query"] == e0["messages"][1]["content"]
    assert len(scen["tasks"]) == len(r.tasks)
    stats = json.loads(files["generation-statistics.json"])
    assert stats["tokens"]["total"] == rep["totalTokens"] and stats["tokens"]["method"] == "chars/4"
    # a tokenizer can be passed in
    words = bundle(r.examples, tokenizer=lambda text: len(text.split()))
    assert json.loads(words["generation-report.json"])["totalTokens"] == sum(
        len(m["content"].split()) for e in r.examples for m in e["messages"])
    # the same input gives the same bytes
    again = bundle(r.examples, analysis=a, processing_time_s=1.2345, tasks=r.tasks, skipped=r.skipped,
                   price_per_million_tokens=2.0, epochs=2, metadata={"repo": r.repo, "commit": r.commit, "seed": 4})
    assert again == files
    written = write_bundle(tmp_path / "out", files)
    assert (tmp_path / "out" / "by-category").is_dir() and len(written) == len(files)


def test_generated_jsonl_passes_the_hubs_upload_validation(sample, tmp_path):
    from apps.datasets.validation.pipeline import validate_path

    r = generate(sample.path, seed=4)
    path = tmp_path / "together-ai-training.jsonl"
    path.write_bytes(bundle(r.examples)["together-ai-training.jsonl"])
    for target in ("together", "openai", "local"):
        res = validate_path(path, target=target, structure_only=True)
        assert res.report.error_total == 0, (target, res.report.as_dict()["errors"][:3])
        assert res.examples == len(r.examples) > 20
