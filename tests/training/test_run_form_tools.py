"""The new-run form's presets, saved settings and preview of the equivalent API call and `hub runs create`
command (issue 14 #4)."""
from __future__ import annotations

import json
import shlex

import pytest

from apps.training.run_form_tools import PRESETS, run_preview

KW = dict(name="my run", dataset_version_id=7, method="dpo", base_model="tiny", parent_version_id=None,
          backend="local", hyperparameters={"learning_rate": "1e-05", "epochs": "3", "beta": "0.2",
                                            "target_modules": "q_proj,v_proj", "gradient_checkpointing": True},
          stages=None, allow_truncation=False)


def test_preview_json_is_the_api_body():
    body = json.loads(run_preview(KW)["json"])
    assert body == {"name": "my run", "dataset_version_id": 7, "method": "dpo", "backend": "local",
                    "base_model": "tiny", "hyperparameters": {"learning_rate": 1e-05, "epochs": 3, "beta": 0.2,
                                                              "target_modules": "q_proj,v_proj",
                                                              "gradient_checkpointing": True}}


def test_preview_command_uses_the_cli_s_real_options():
    import typer.main
    from hub_sdk.cli.runs import app

    command = typer.main.get_command(app).commands["create"]
    options = {o for p in command.params for o in getattr(p, "opts", [])}
    preview = run_preview(KW)
    args = shlex.split(preview["cli"])
    assert args[:3] == ["hub", "runs", "create"]
    flags = [a for a in args[3:] if a.startswith("-")]
    assert set(flags) <= options, set(flags) - options
    assert "--lr" in args and args[args.index("--lr") + 1] == "1e-05"
    assert ["-p", "beta=0.2"] == args[args.index("beta=0.2") - 1:args.index("beta=0.2") + 1]
    assert "-p" in args and "gradient_checkpointing=true" in args and "target_modules=q_proj,v_proj" in args
    # the CLI parses -p values as JSON, as the API body has them
    from hub_sdk.cli.common import parse_params

    assert parse_params(["beta=0.2", "gradient_checkpointing=true"]) == {"beta": 0.2, "gradient_checkpointing": True}
    assert preview["notes"] == []
    assert run_preview({**KW, "parent_version_id": 3})["notes"]  # the CLI cannot continue a version: said so


def test_presets_name_only_form_fields_valid_for_every_local_method():
    from apps.training.hyperparameters import TABLE

    in_form = {s.name: s for s in TABLE if s.in_form}
    assert [label for _, label, _, _ in PRESETS] == ["Quick test", "Default", "Thorough"]
    for _, _, _, hp in PRESETS:
        for name in hp:
            assert name in in_form and in_form[name].applies("grpo", "local") and in_form[name].applies("lora", "local")


@pytest.mark.django_db
def test_saved_settings_are_saved_per_user_and_offered_back(client, member, make_user, qa_version, tiny_base_model):
    client.force_login(member)
    r = client.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "backend": "local",
                                   "base_model": "tiny", "max_steps": "30", "learning_rate": "0.0003",
                                   "config_name": "short lora", "action": "save_config"})
    assert r.status_code == 200
    assert 'Saved "short lora"' in r.content.decode()
    from apps.training.models import SavedRunConfig

    config = SavedRunConfig.objects.get(owner=member, name="short lora")
    assert config.values == {"method": "lora", "backend": "local", "base_model": "tiny",
                             "hyperparameters": {"max_steps": "30", "learning_rate": "0.0003"}}
    page = client.get("/runs/new/").content.decode()
    assert f'<option value="saved:{config.pk}">short lora</option>' in page
    r = client.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "backend": "local",
                                   "base_model": "tiny", "config_name": "  ", "action": "save_config"})
    assert r.status_code == 422 and "Name the settings" in r.content.decode()
    other = make_user("other", "member")
    client.force_login(other)
    assert "short lora" not in client.get("/runs/new/").content.decode()


@pytest.mark.django_db
def test_preview_partial_follows_the_posted_form(client, member, qa_version, tiny_base_model):
    client.force_login(member)
    r = client.post("/runs/new/", {"dataset_version": qa_version.pk, "method": "lora", "backend": "local",
                                   "base_model": "tiny", "max_steps": "20", "action": "preview"},
                    HTTP_HX_REQUEST="true")
    html = r.content.decode()
    assert r.status_code == 200 and "<form" not in html
    assert "POST /api/runs" in html and "&quot;max_steps&quot;: 20" in html
    assert f"hub runs create --dataset-version {qa_version.pk} --base-model tiny --max-steps 20 --watch" in html
