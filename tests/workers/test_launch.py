"""Multi-GPU path: torchrun starts N ranks of workers.engine.launch, each running the same
run_training; here on CPU with the gloo backend (2 ranks), which is as far as this machine goes."""
from __future__ import annotations

from workers.engine.launch import run_distributed
from workers.engine.sft import Job, Stage, hp_with_defaults


def _qa(i):
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}


def test_torchrun_two_ranks_same_code_path(tiny_model_dir, tmp_path):
    reports, ckpts = [], []
    job = Job(method="lora", output_dir=tmp_path / "run", stages=[Stage(train=[_qa(i) for i in range(32)])],
              hp=hp_with_defaults({"max_steps": 6, "batch_size": 2, "learning_rate": 3e-3, "save_steps": 3}),
              base_model_path=str(tiny_model_dir), evaluate=False)
    result = run_distributed(job, gpus=2, report=lambda s, m: reports.append((s, m)), should_stop=lambda: False,
                             on_checkpoint=lambda s, p, m: ckpts.append(s), poll_s=0.2)
    assert result["world_size"] == 2
    assert [s for s, m in reports if m.get("kind") == "train"] == list(range(1, 7))
    assert ckpts == [3, 6]
    assert (tmp_path / "run" / "stage-0" / "final" / "adapter_model.safetensors").exists()


def test_torchrun_stop_file_stops_all_ranks(tiny_model_dir, tmp_path):
    seen = []
    job = Job(method="lora", output_dir=tmp_path / "run", stages=[Stage(train=[_qa(i) for i in range(32)])],
              hp=hp_with_defaults({"max_steps": 400, "batch_size": 2, "save_steps": 1000}),
              base_model_path=str(tiny_model_dir), evaluate=False)
    result = run_distributed(job, gpus=2, report=lambda s, m: seen.append(s),
                             should_stop=lambda: len(seen) >= 3, on_checkpoint=lambda *a: None, poll_s=0.1)
    assert result["stopped"] and result["stopped_at"] < 400


def test_accelerate_launch_same_code_path(tiny_model_dir, tmp_path):
    """`accelerate launch` runs the same entry point. Without GPUs accelerate starts a single process
    (`--cpu`); on a GPU machine the same command with `--multi_gpu --num_processes=N` starts N ranks."""
    import sys

    reports = []
    job = Job(method="lora", output_dir=tmp_path / "run", stages=[Stage(train=[_qa(i) for i in range(16)])],
              hp=hp_with_defaults({"max_steps": 3, "batch_size": 2, "save_steps": 100}),
              base_model_path=str(tiny_model_dir), evaluate=False)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes=1", "--num_machines=1",
                "--mixed_precision=no", "--dynamo_backend=no"]
    result = run_distributed(job, gpus=1, report=lambda s, m: reports.append((s, m)), should_stop=lambda: False,
                             on_checkpoint=lambda *a: None, launcher=launcher, poll_s=0.2)
    assert result["world_size"] == 1
    assert [s for s, m in reports if m.get("kind") == "train"] == [1, 2, 3]
    assert (tmp_path / "run" / "stage-0" / "final" / "adapter_model.safetensors").exists()
