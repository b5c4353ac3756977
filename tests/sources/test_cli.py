"""`python manage.py generate_scenarios` end to end on a tiny git repository: the first run registers the source,
analyses it and makes a dataset version whose every file block is the repository's content at the commit and
every line range exists; a run after a one-file commit makes a new version of the same dataset, regenerating
only that file's units, and the datasets diff shows what changed. Bad input exits 1 and leaves nothing."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.management import call_command

from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.selectors import version_diff
from apps.sources.models import Analysis, Generation, Source
from tests.sources.conftest import TEXT
from workers.engine import repos as engine

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> dict:
    out = io.StringIO()
    call_command("generate_scenarios", *args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def fail(*args) -> dict:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("generate_scenarios", *args, "--json", stdout=out, stderr=io.StringIO())
    assert exc.value.code == 1
    return json.loads(out.getvalue())


def assert_exact(repo, version):
    """Every file block is byte-for-byte the file at the provenance commit; every line range exists."""
    checked = 0
    for e in version.examples.all():
        prov = e.meta["provenance"]
        text = repo.show(prov["commit"], prov["path"])
        lines = text.splitlines()
        assert 1 <= prov["start_line"] <= prov["end_line"] <= len(lines), (prov, len(lines))
        answer = e.messages[-1]["content"]
        for path, content in engine.parse_file_blocks(answer):
            assert content == repo.show(prov["commit"], path), (e.meta["example_id"], path)
            checked += 1
        assert set(prov) >= {"repo", "commit", "path", "start_line", "end_line", "generator", "generator_version",
                             "seed", "license"}
    assert checked > 0


def test_first_run_then_incremental_run_on_a_one_file_commit(repo, admin_user):
    first = run(str(repo.path), "--max", "60", "--seed", "7")
    v1 = DatasetVersion.objects.get(pk=first["dataset_version_id"])
    assert v1.status == "ready" and v1.number == 1
    assert first["totalScenarios"] == v1.example_count > 5
    assert first["dataset_id"] == v1.dataset_id
    assert_exact(repo, v1)
    src = Source.objects.get()
    assert src.kind == "path" and src.last_commit == repo.head() and src.dataset_id == v1.dataset_id
    assert v1.validation["error_total"] == 0, v1.validation["errors"][:3]

    # one file changes: a function is rewritten
    repo.commit("Shout louder", {"textutil.py": TEXT.replace('"!" * times', '"!" * (times + 1)')})
    second = run(str(repo.path), "--max", "60", "--seed", "7")
    v2 = DatasetVersion.objects.get(pk=second["dataset_version_id"])
    assert v2.dataset_id == v1.dataset_id and v2.number == 2 and v2.parent_id == v1.pk
    assert Dataset.objects.count() == 1 and Source.objects.count() == 1
    inc = second["incremental"]
    assert inc["kept"] > 0 and inc["changed"] + inc["added"] > 0
    gen2 = Generation.objects.get(pk=second["generation_id"])
    assert gen2.base_id == first["generation_id"]
    # only textutil.py's units were regenerated: every new example comes from that file (or its history)
    new_ids = {e.meta["example_id"] for e in v2.examples.all()} - {e.meta["example_id"] for e in v1.examples.all()}
    assert new_ids
    by_id = {e.meta["example_id"]: e for e in v2.examples.all()}
    touched = {f["path"] for i in new_ids for f in by_id[i].meta["provenance"].get("files") or
               [{"path": by_id[i].meta["provenance"]["path"]}]}
    assert "textutil.py" in touched and "calc.py" not in touched, touched
    assert_exact(repo, v2)
    d = version_diff(a=v1, b=v2)
    assert d["added_count"] + d["changed_count"] > 0
    assert d["removed_count"] + d["changed_count"] >= inc["changed"]


def test_bundle_and_report(repo, admin_user):
    from apps.sources.services import bundle_zip_path

    report = run(str(repo.path), "--max", "20")
    gen = Generation.objects.get(pk=report["generation_id"])
    names = set(zipfile.ZipFile(bundle_zip_path(gen)).namelist())
    assert {"together-ai-training.jsonl", "training-scenarios.json", "generation-statistics.json",
            "generation-report.json"} <= names
    assert any(n.startswith("by-category/") for n in names)
    for key in ("totalScenarios", "scenariosByCategory", "scenariosByComplexity", "filesByLanguage", "components",
                "totalTokens", "processingTime", "estimatedTrainingCost", "dataset_version_id"):
        assert key in report, key
    lines = zipfile.ZipFile(bundle_zip_path(gen)).read("together-ai-training.jsonl").decode().splitlines()
    assert len(lines) == report["totalScenarios"]
    assert [m["role"] for m in json.loads(lines[0])["messages"]] == ["system", "user", "assistant"]


def test_generators_and_seed_options(repo, admin_user):
    report = run(str(repo.path), "--generators", "fim,docstring", "--seed", "3", "--max", "10")
    v = DatasetVersion.objects.get(pk=report["dataset_version_id"])
    assert {e.meta["generator"] for e in v.examples.all()} <= {"fim", "docstring"}
    assert {e.meta["provenance"]["seed"] for e in v.examples.all()} == {3}


def test_bad_input_exits_1_and_leaves_nothing(tmp_path, repo, admin_user):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.py").write_text("x = 1\n")
    err = fail(str(plain))
    assert err["code"] == "not_a_git_repo"
    empty = tmp_path / "empty"
    empty.mkdir()
    from tests.sources.conftest import git

    git(empty, "init", "-q")
    err = fail(str(empty))
    assert err["code"] == "empty_repo"
    err = fail(str(repo.path), "--generators", "nope")
    assert err["code"] == "invalid" and "nope" in err["error"]
    err = fail(str(tmp_path / "missing"))
    assert err["code"] == "path_not_found"
    assert not Source.objects.exists() and not Analysis.objects.exists() and not Dataset.objects.exists()


def test_generation_with_no_examples_fails_cleanly(tmp_path, admin_user):
    from tests.sources.conftest import Repo

    r = Repo(tmp_path / "binonly")
    r.commit("Data only", {"data.csv": "a,b\n1,2\n"})
    err = fail(str(r.path), "--generators", "fim")
    assert err["code"] == "E_NO_EXAMPLES"
    assert not DatasetVersion.objects.exists() and not Dataset.objects.exists()
    assert Generation.objects.get().status == "failed"


CHECK = '''from calc import add, clamp, is_adult, Stack
assert add(2, 3) == 5
assert clamp(5, 0, 10) == 5 and clamp(-1, 0, 10) == 0 and clamp(11, 0, 10) == 10
assert is_adult(18) and not is_adult(17)
s = Stack()
assert s.push(1) == 1 and s.pop() == 1
print("ok")
'''


def test_test_command_opt_in_keeps_only_caught_mutations(repo, admin_user):
    repo.commit("Add a check script", {"check.py": CHECK})
    report = run(str(repo.path), "--generators", "mutation", "--test-cmd", "python3 check.py",
                 "--test-timeout", "30", "--max", "5")
    gen = Generation.objects.get(pk=report["generation_id"])
    assert gen.options["run_tests"] and gen.options["test_command"] == "python3 check.py"
    runs = gen.summary["test_runs"]
    assert runs and runs[0]["status"] == "passed", runs[:2]  # the baseline: the unmodified commit passes
    assert report["totalScenarios"] >= 1
    v = DatasetVersion.objects.get(pk=report["dataset_version_id"])
    assert {e.meta["generator"] for e in v.examples.all()} == {"mutation"}


def test_a_hanging_test_command_is_killed_and_reported(repo, admin_user):
    err = fail(str(repo.path), "--generators", "mutation", "--test-cmd", "sleep 60", "--test-timeout", "2")
    assert err["code"] == "E_NO_EXAMPLES", err  # every mutation needed the test command, which never passed
    assert "does not pass on the unchanged commit" in err["error"] and "did not finish within 2 s" in err["error"], err
    assert "killed" in err["error"]
    gen = Generation.objects.get()
    assert gen.status == "failed" and gen.error == err["error"][:500]
    assert not DatasetVersion.objects.exists() and not Dataset.objects.exists()


def test_an_archive_run_again_is_unpacked_again_into_a_new_version(make_archive, admin_user, tmp_path):
    from tests.sources.conftest import CALC

    files = {"proj/calc.py": CALC, "proj/textutil.py": TEXT}
    first = run(str(make_archive("proj.zip", files)), "--max", "20")
    files["proj/textutil.py"] = TEXT.replace('"-".join(words)', '"_".join(words)')
    second = run(str(make_archive("proj.zip", files)), "--max", "20")
    assert second["dataset_id"] == first["dataset_id"] and second["version_number"] == 2
    assert Source.objects.count() == 1 and second["incremental"]["kept"] > 0
    assert second["commits"] != first["commits"]


def test_without_json_a_summary_goes_to_stderr_and_the_report_to_stdout(repo, admin_user):
    out, err = io.StringIO(), io.StringIO()
    call_command("generate_scenarios", str(repo.path), "--max", "5", stdout=out, stderr=err)
    report = json.loads(out.getvalue())
    assert report["totalScenarios"] == 5 and "Registered source" in err.getvalue()
    assert f"dataset {report['dataset_id']} version 1" in err.getvalue()


def test_progress_lines_name_each_phase_on_a_non_terminal(repo, admin_user):
    """apps/core/cli_progress.py: without a terminal, one line per job phase (the analysis, then the
    generation) on stderr; with --json nothing but the report."""
    out, err = io.StringIO(), io.StringIO()
    call_command("generate_scenarios", str(repo.path), "--max", "3", stdout=out, stderr=err)
    lines = err.getvalue().splitlines()
    phases = [line for line in lines if " · " in line]
    assert any(line.startswith("Analysis") or "analys" in line.lower() for line in phases), lines
    assert any("generat" in line.lower() for line in phases), lines
