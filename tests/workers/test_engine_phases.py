"""The engine (Django-free): phases reported through report(step, {"kind": "phase"}), a cancel honoured
during post-training evaluation, and a resume from the final checkpoint that trains no further."""
from __future__ import annotations

import shutil

import pytest

from tests.training.conftest import _qa
from workers.engine.sft import Job, Stage, hp_with_defaults, run_training

HP = {"max_steps": 4, "save_steps": 2, "batch_size": 4, "learning_rate": 3e-3, "eval_max_new_tokens": 4,
      "save_total_limit": 3}


def _job(tiny_model_dir, out, *, evaluate=True, **hp):
    stage = Stage(train=[_qa(i) for i in range(24)], validation=[_qa(i) for i in range(24, 28)])
    return Job(method="lora", output_dir=out, stages=[stage], hp=hp_with_defaults({**HP, **hp}),
               base_model_path=str(tiny_model_dir), evaluate=evaluate)


class Recorder:
    def __init__(self, stop_in_phase=None):
        self.events, self.phase, self.stop_in_phase, self.stop_checks = [], None, stop_in_phase, 0

    def report(self, step, metrics):
        self.events.append((step, dict(metrics)))
        if metrics.get("kind") == "phase":
            self.phase = metrics["phase"]

    def should_stop(self):
        if self.stop_in_phase and self.phase == self.stop_in_phase:
            self.stop_checks += 1
            return True
        return False

    def phases(self):
        return [m["phase"] for _, m in self.events if m.get("kind") == "phase"]

    def train_steps(self):
        return [s for s, m in self.events if m.get("kind") == "train"]


def test_phases_are_reported_in_order(tiny_model_dir, tmp_path):
    rec = Recorder()
    result = run_training(_job(tiny_model_dir, tmp_path / "run"), report=rec.report, should_stop=rec.should_stop)
    assert not result["stopped"]
    phases = rec.phases()
    assert phases[0] == "loading" and "training" in phases and "saving" in phases
    assert phases[:3] == ["loading", "tokenizing", "training"]  # the run page says it is tokenizing
    assert phases.index("training") < phases.index("evaluating") < len(phases)
    assert phases[-1] == "evaluating"  # the side-by-side evaluation comes last
    # no training metric is reported once evaluation started
    first_eval = next(i for i, (_, m) in enumerate(rec.events) if m.get("phase") == "evaluating")
    assert not any(m.get("kind") == "train" for _, m in rec.events[first_eval:])


def test_cancel_during_post_training_evaluation_is_honoured(tiny_model_dir, tmp_path):
    """Regression: should_stop() was never asked while evaluating, so the run could not be cancelled."""
    rec = Recorder(stop_in_phase="evaluating")
    result = run_training(_job(tiny_model_dir, tmp_path / "run"), report=rec.report, should_stop=rec.should_stop)
    assert result["stopped"] is True and rec.stop_checks >= 1
    assert result["stopped_at"] == 4
    assert "evaluation" not in result
    # the trained weights are kept, as a cancel during training keeps its checkpoint
    assert (tmp_path / "run" / "stage-0" / "final" / "adapter_model.safetensors").exists()
    assert (tmp_path / "run" / "stage-0" / "checkpoint-4").is_dir()


def test_resume_from_the_final_checkpoint_trains_no_further(tiny_model_dir, tmp_path):
    """Regression: resuming (a relaunch) from the checkpoint at max_steps trained one more step ("5 / 4")."""
    first = Recorder()
    run_training(_job(tiny_model_dir, tmp_path / "a", evaluate=False), report=first.report,
                 should_stop=first.should_stop)
    assert first.train_steps() == [1, 2, 3, 4]
    src = tmp_path / "a" / "stage-0" / "checkpoint-4"
    assert src.is_dir()
    shutil.copytree(src, tmp_path / "b" / "stage-0" / "checkpoint-4")
    again = Recorder()
    result = run_training(_job(tiny_model_dir, tmp_path / "b", evaluate=False), report=again.report,
                          should_stop=again.should_stop)
    assert again.train_steps() == []
    assert not result["stopped"] and result["total_steps"] == 4
    last_loss = [m["loss"] for _, m in first.events if m.get("kind") == "train"][-1]
    assert result["final_loss"] == pytest.approx(last_loss)  # the checkpoint's weights and state were loaded
    assert (tmp_path / "b" / "stage-0" / "final" / "adapter_model.safetensors").exists()
    assert [s for s, m in again.events if m.get("kind") == "resume"] == [4]
