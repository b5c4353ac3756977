"""Bug → fix by AST mutation, confirmed by the repository's own tests in a sandbox; hanging and forking
test commands are killed at their timeout and reported."""
from __future__ import annotations

import ast
import os
import sys
import time

import pytest

from tests.engine_repos.checks import assert_exact
from tests.engine_repos.conftest import CALC
from workers.engine.repos import GenerateOptions, SandboxLimits, generate, run_command
from workers.engine.repos.generators.mutation import OPERATORS, candidates, valid
from workers.engine.repos.sandbox import sandbox_uid, uid_processes

# As root the command runs as an unprivileged uid, which cannot enter /root (where this venv's interpreter
# lives here): the sample's tests run on the system Python, without pytest.
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PYTEST = (f"PYTHONPATH=. {PY} -c \"import runpy; ns = runpy.run_path('tests/test_calc.py'); "
          f"[f() for n, f in sorted(ns.items()) if n.startswith('test_')]\"")


def test_every_operator_makes_one_small_valid_edit():
    src = ("def f(a, b, items):\n"
           "    if a < b and b > 0:\n"
           "        return max(a, b) + items[1]\n"
           "    while a or b:\n"
           "        a -= 1\n"
           "    if not items:\n"
           "        return True\n"
           "    return a * b\n")
    fn = ast.parse(src).body[0]
    found = {}
    for m in candidates(src, fn):
        mutated = m.apply(src)
        if valid(src, mutated):
            found.setdefault(m.operator, []).append(mutated)
    assert set(found) == set(OPERATORS)
    expect = {"flip_comparison": "if a <= b and b > 0:", "swap_arguments": "max(b, a)", "off_by_one": "items[2]",
              "drop_condition": "    if a < b:\n", "flip_boolean": "while a and b:", "flip_return": "return False",
              "negate_condition": "    if items:\n", "flip_arithmetic": "return a / b"}
    for op, text in expect.items():
        assert any(text in m for m in found[op]), op
    for mutated in sum(found.values(), []):  # one line differs, comments and layout elsewhere kept
        assert sum(1 for x, y in zip(src.splitlines(), mutated.splitlines()) if x != y) == 1


def test_only_mutations_that_make_a_test_fail_are_kept(sample):
    opts = GenerateOptions(test_command=PYTEST, test_timeout=60, per_file=4)
    r = generate(sample.path, seed=2, generators=["mutation"], options=opts)
    assert r.warnings == []
    assert r.test_runs[0]["label"] == "baseline" and r.test_runs[0]["status"] == "passed"
    mutants = r.test_runs[1:]
    assert mutants and {run["status"] for run in mutants} <= {"passed", "failed"}
    killed = [run for run in mutants if run["status"] == "failed"]
    survived = [run for run in mutants if run["status"] == "passed"]
    assert len(r.examples) == len(killed) > 0
    assert r.skipped.get("mutation_survived", 0) == len(survived)
    for ex in r.examples:
        assert ex["meta"]["mutation"]["test_confirmed"] is True
        assert f"Running `{PYTEST}` fails" in ex["messages"][1]["content"]
        assert_exact(sample.path, ex)
    # the working tree was never touched
    assert (sample.path / "calc.py").read_text() == CALC


def test_a_test_command_that_fails_on_the_clean_tree_is_reported(sample):
    opts = GenerateOptions(test_command="exit 1", test_timeout=10)
    r = generate(sample.path, seed=2, generators=["mutation", "docs_qa"], options=opts)
    assert [w["code"] for w in r.warnings] == ["test_command_baseline_failed"]
    assert "exit code 1" in r.warnings[0]["message"]
    assert not [e for e in r.examples if e["meta"]["generator"] == "mutation"]
    assert r.skipped["mutation_untested"] >= 1
    assert [e for e in r.examples if e["meta"]["generator"] == "docs_qa"]  # the rest still runs


def test_a_hanging_test_command_is_killed_at_its_timeout(sample):
    opts = GenerateOptions(test_command="sleep 600", test_timeout=1.5)
    started = time.monotonic()
    r = generate(sample.path, seed=2, generators=["mutation"], options=opts)
    assert time.monotonic() - started < 20
    (run,) = r.test_runs
    assert run["status"] == "timeout" and run["killed"] is True
    assert "did not finish within 1.5 s" in run["message"] and "killed" in run["message"]
    assert r.warnings[0]["code"] == "test_command_baseline_failed" and "1.5 s" in r.warnings[0]["message"]


def test_a_fork_bomb_is_contained_and_killed(tmp_path):
    limits = SandboxLimits(max_processes=40, cpu_seconds=20)
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    started = time.monotonic()
    res = run_command("bomb(){ bomb | bomb & }; bomb; sleep 600", work, timeout=2, limits=limits)
    assert time.monotonic() - started < 15
    assert res.status == "timeout" and res.killed
    assert "killed together with every process it started" in res.message
    uid = sandbox_uid(limits)
    if uid is not None:  # as root the command ran as its own uid: nothing of it survives
        assert uid_processes(uid) == []


def test_processes_that_leave_the_group_are_killed_too(tmp_path):
    limits = SandboxLimits()
    uid = sandbox_uid(limits)
    if uid is None:
        pytest.skip("needs root: only then does the command run as its own uid")
    work = tmp_path / "w"
    work.mkdir()
    work.chmod(0o777)
    res = run_command("(setsid sleep 300 &); echo started", work, timeout=10, limits=limits)
    assert res.status == "passed" and res.output_tail == "started\n"
    assert uid_processes(uid) == []


def test_resource_limits_apply(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    work.chmod(0o777)
    limits = SandboxLimits(file_size_bytes=10_000, address_space_bytes=512 * 1024 ** 2)
    big = run_command("head -c 100000 /dev/zero > big.bin", work, timeout=10, limits=limits)
    assert big.status == "failed"
    assert not (work / "big.bin").exists() or (work / "big.bin").stat().st_size <= 10_000
    mem = run_command(f"{PY} -c \"x = bytearray(2 * 1024 ** 3)\"", work, timeout=20, limits=limits)
    assert mem.status == "failed" and "MemoryError" in mem.output_tail
    ok = run_command("echo fine", work, timeout=10, limits=limits)
    assert ok.status == "passed" and ok.output_tail == "fine\n"


def test_a_program_the_sandbox_user_cannot_run_is_explained(tmp_path):
    real = os.path.realpath(sys.executable)
    if sandbox_uid(SandboxLimits()) is None or not real.startswith("/root/"):
        pytest.skip("only as root with an interpreter under /root")
    work = tmp_path / "w"
    work.mkdir()
    work.chmod(0o777)
    res = run_command(f"{real} -c pass", work, timeout=10)
    assert res.status == "failed" and res.returncode == 126 and "/root" in res.message
