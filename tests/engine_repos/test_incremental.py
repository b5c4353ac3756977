"""Incremental regeneration: a newer commit regenerates only what its changed files feed."""
from __future__ import annotations

import copy

from tests.engine_repos.checks import assert_exact
from tests.engine_repos.conftest import CALC, build_sample
from workers.engine.repos import GenerateOptions, generate


def _ids(examples):
    return {e["meta"]["example_id"]: e for e in examples}


def _strip_commit(ex):
    ex = copy.deepcopy(ex)
    ex["meta"]["provenance"]["commit"] = None
    return ex


def test_a_one_file_commit_regenerates_only_that_files_examples(tmp_path):
    repo = build_sample(tmp_path / "calc")
    first = generate(repo.path, seed=3)
    old = _ids(first.examples)
    new_calc = CALC.replace("    return a + b\n", "    total = a + b\n    return total\n")
    head2 = repo.commit("Store the sum in a local variable before returning it", {"calc.py": new_calc})

    inc = generate(repo.path, seed=3, previous_manifest=first.manifest)
    full = generate(repo.path, seed=3)
    assert inc.commit == full.commit == head2

    # the same selection as a full run on the new commit
    selected = inc.diff["kept"] + inc.diff["added"] + inc.diff["changed"]
    assert sorted(selected) == sorted(inc.manifest["selected"]) == sorted(e["meta"]["example_id"] for e in full.examples)
    assert inc.manifest["selected"] == full.manifest["selected"]
    assert inc.stats == {**full.stats, "units_regenerated": inc.stats["units_regenerated"]}

    # only units reading calc.py, plus the new commit, ran again
    touched = {k for k, u in full.manifest["units"].items()
               if (u["k"] == head2 if u["g"] == "commit" else "calc.py" in _deps_paths(full, k))}
    regenerated = {k for k in inc.manifest["units"] if k not in first.manifest["units"]}
    assert regenerated == touched and 0 < len(regenerated) < len(full.manifest["units"]) / 2
    assert inc.stats["units_regenerated"] == len(regenerated)

    # every new or changed example comes from calc.py (or its tests pair, or the new commit) …
    fresh = _ids(inc.examples)
    assert set(fresh) == set(inc.diff["added"]) | set(inc.diff["changed"])
    for ex in fresh.values():
        prov = ex["meta"]["provenance"]
        assert prov["commit"] == head2
        assert prov["path"] in ("calc.py", "tests/test_calc.py"), prov
        assert_exact(repo.path, ex)
    assert inc.diff["changed"] and all(fresh[i]["meta"]["generator"] != "commit" for i in inc.diff["changed"])
    assert [fresh[i]["meta"]["generator"] for i in inc.diff["added"]] == ["commit"]
    # … each changed one replaces an old example of the same generator and file …
    replaces = inc.diff["replaces"]
    assert sorted(replaces) == sorted(inc.diff["changed"])
    for new_id, old_id in replaces.items():
        assert fresh[new_id]["meta"]["generator"] == old[old_id]["meta"]["generator"]
        assert fresh[new_id]["meta"]["provenance"]["path"] == old[old_id]["meta"]["provenance"]["path"]
    # … every removed one (the replaced ones included) was made from the old calc.py, and nothing else moved
    assert set(replaces.values()) <= set(inc.diff["removed"])
    for i in inc.diff["removed"]:
        assert old[i]["meta"]["provenance"]["path"] in ("calc.py", "tests/test_calc.py")
    assert set(inc.diff["kept"]) == set(old) - set(inc.diff["removed"])
    # kept examples are still exact (at the commit they were made at) and equal to a full run's, bar that commit
    full_by_id = _ids(full.examples)
    for i in inc.diff["kept"]:
        assert_exact(repo.path, old[i])
        assert _strip_commit(old[i]) == _strip_commit(full_by_id[i])


def _deps_paths(result, unit_key) -> set[str]:
    """Which files a unit read: found by the units whose examples cite them (deps are hashed in the key)."""
    u = result.manifest["units"][unit_key]
    by_id = _ids(result.examples)
    paths = set()
    for i in u["ids"]:
        prov = by_id[i]["meta"]["provenance"]
        paths.add(prov["path"])
        paths.update(f["path"] for f in prov.get("files") or [])
        meta = by_id[i]["meta"]
        paths.update(p for p in (meta.get("tests"), meta.get("implementation")) if p)
    for t in u["tasks"]:
        paths.update(t["files"])
    return paths or {u["k"]}


def test_nothing_changes_when_nothing_changed_and_options_reset_everything(tmp_path):
    repo = build_sample(tmp_path / "calc")
    first = generate(repo.path, seed=3, max_examples=12)
    again = generate(repo.path, seed=3, max_examples=12, previous_manifest=first.manifest)
    assert again.examples == [] and again.diff["added"] == again.diff["changed"] == again.diff["removed"] == []
    assert sorted(again.diff["kept"]) == sorted(first.manifest["selected"])
    assert again.stats["units_regenerated"] == 0
    other = generate(repo.path, seed=4, max_examples=12, previous_manifest=first.manifest)
    assert [w["code"] for w in other.warnings] == ["previous_manifest_ignored"]
    assert len(other.examples) == 12 and sorted(other.diff["removed"]) == sorted(first.manifest["selected"])
    # other options: every example is made again (same files, new ids), none is wrongly "kept"
    brief = generate(repo.path, seed=3, max_examples=12, previous_manifest=first.manifest,
                     options=GenerateOptions(system_prompt="Be brief."))
    assert [w["code"] for w in brief.warnings] == ["previous_manifest_ignored"] and brief.diff["kept"] == []
    assert len(brief.examples) == 12 and all(e["messages"][0]["content"] == "Be brief." for e in brief.examples)
    assert sorted(brief.diff["removed"]) == sorted(first.manifest["selected"])


def test_a_deleted_file_removes_its_examples(tmp_path):
    repo = build_sample(tmp_path / "calc")
    first = generate(repo.path, seed=3, generators=["docstring", "fim", "docs_qa"])
    repo.commit("Remove the web helpers from the project", {"web/util.js": None})
    inc = generate(repo.path, seed=3, generators=["docstring", "fim", "docs_qa"], previous_manifest=first.manifest)
    old = _ids(first.examples)
    assert inc.diff["removed"] and inc.examples == []
    assert all(old[i]["meta"]["provenance"]["path"] == "web/util.js" for i in inc.diff["removed"])
    assert inc.stats["units_regenerated"] == 0


def test_a_larger_selection_fills_in_kept_units_with_their_content(tmp_path):
    repo = build_sample(tmp_path / "calc")
    small = generate(repo.path, seed=5, max_examples=4)
    bigger = generate(repo.path, seed=5, max_examples=10, previous_manifest=small.manifest)
    full = generate(repo.path, seed=5, max_examples=10)
    assert bigger.manifest["selected"] == full.manifest["selected"]
    # examples the small run chose but did not hand over are produced now, identical to a full run's
    assert _ids(bigger.examples) == {i: e for i, e in _ids(full.examples).items() if i in bigger.diff["added"]}
