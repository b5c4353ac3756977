"""A worker process really killed (SIGKILL) mid-run; a new process resumes at the right step.

Runs in subprocesses against a file SQLite database (test settings with TEST_DATABASE_URL), so the
killed process leaves exactly what a real crash leaves: a run in `running`, metric rows and checkpoint
folders up to where it died."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SETUP = r"""
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from apps.accounts.models import User
from apps.datasets.models import Dataset, DatasetVersion, Example
from apps.registry.services import base_model_register
from apps.training.services import run_create
from workers.engine.tiny import build_model
import sys, hashlib
tiny = sys.argv[1]
build_model(tiny, size="nano", texts=[f"what is {i} plus {i}" for i in range(50)], vocab_size=400, context_length=256)
base_model_register(model_id="tiny", path=tiny)
u = User.objects.create_user(username="u", password="p")
ds = Dataset.objects.create(name="qa", owner=u)
v = DatasetVersion.objects.create(dataset=ds, number=1, status="ready", validation={"errors": []})
for i in range(40):
    msgs = [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"It is {2*i}."}]
    Example.objects.create(version=v, index=i, messages=msgs, content_hash=hashlib.sha256(str(i).encode()).hexdigest())
run = run_create(user=u, dataset_version_id=v.pk, base_model="tiny",
                 hyperparameters={"max_steps": 60, "batch_size": 2, "save_steps": 10, "save_total_limit": 3,
                                  "learning_rate": 1e-3, "eval_max_new_tokens": 4})
print(run.pk)
"""

WORK = r"""
import django; django.setup()
import sys
from workers.training import execute_run
print(execute_run(int(sys.argv[1])))
"""

# The first worker is slowed down (100 ms per step, test side only) so it can be killed mid-run, also on a busy
# machine (the test polls the database every 0.2 s and kills once past the second checkpoint).
WORK_SLOW = r"""
import django; django.setup()
import sys, time
from workers import training
report = training.RunReporter.report
def slow(self, step, metrics):
    time.sleep(0.1)
    report(self, step, metrics)
training.RunReporter.report = slow
print(training.execute_run(int(sys.argv[1])))
"""

# A new worker process boots: the reconciler re-queues the run, then the worker takes the message.
RESTART = r"""
import django; django.setup()
import sys
from apps.training.models import TrainingRun
from apps.training.services import run_reconcile
from workers.training import execute_run
run_id = int(sys.argv[1])
actions = run_reconcile()
assert actions == [(run_id, "resumed")], actions
assert TrainingRun.objects.get(pk=run_id).status == "queued"
print(execute_run(run_id))
"""


@pytest.fixture
def env(tmp_path):
    e = {**os.environ, "DJANGO_SETTINGS_MODULE": "training_hub.test_settings",
         "TEST_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "HUB_DATA_DIR": str(tmp_path / "data"),
         "HUB_ARTIFACT_ROOT": str(tmp_path / "artifacts"), "PYTHONPATH": str(ROOT)}
    return e


def _py(env, code, *args, timeout=180):
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_sigkill_mid_run_then_resume(env, tmp_path):
    run_id = int(_py(env, SETUP, str(tmp_path / "tiny")))
    db = sqlite3.connect(tmp_path / "db.sqlite3")
    proc = subprocess.Popen([sys.executable, "-c", WORK_SLOW, str(run_id)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until past the second checkpoint
            row = db.execute("select max(step) from training_checkpoint where run_id=?", (run_id,)).fetchone()
            step = db.execute("select current_step from training_trainingrun where id=?", (run_id,)).fetchone()[0]
            if row[0] and row[0] >= 20 and step > row[0] + 3:
                break
            assert proc.poll() is None, "the worker ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint in time")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    status, killed_at = db.execute("select status, current_step from training_trainingrun where id=?",
                                   (run_id,)).fetchone()
    assert status == "running" and killed_at > 20
    last_ckpt = db.execute("select max(step) from training_checkpoint where run_id=? and deleted=0",
                           (run_id,)).fetchone()[0]

    outcome = _py(env, RESTART, str(run_id), timeout=300)
    assert outcome == "succeeded", db.execute("select error from training_trainingrun where id=?", (run_id,)).fetchone()
    steps = [r[0] for r in db.execute(
        "select step from training_metricpoint where run_id=? and kind='train' order by step, id", (run_id,))]
    assert steps == list(range(1, 61))  # resumed after the checkpoint: no gap, no duplicate, no restart
    summary = db.execute("select summary from training_trainingrun where id=?", (run_id,)).fetchone()[0]
    assert '"resumed": 1' in summary
    assert last_ckpt % 10 == 0 and last_ckpt < killed_at
