"""Run page and form wording (issue 14 #5): config tables without Python reprs, a GRPO run's loss chart named
for what it is, and the preference section titled for the chosen method (KTO said "Preference (DPO)")."""
from __future__ import annotations

import pytest

from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db


def _run(member, qa_version, **kw):
    return TrainingRun.objects.create(owner=member, dataset_version=qa_version, status=TrainingRun.Status.SUCCEEDED,
                                      **kw)


def test_config_table_has_no_python_reprs(client, member, qa_version, tiny_base_model):
    run = _run(member, qa_version, base_model=tiny_base_model, method="lora",
               hyperparameters={"lora_target_modules": ["q_proj", "v_proj"], "eval_prompts": [], "packing": True,
                                "neftune_alpha": None, "learning_rate": 0.0002})
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    config = html[html.index('id="run-config"'):html.index("Compare with other runs")]
    assert "q_proj, v_proj" in config and ">yes<" in config and "0.0002" in config
    for repr_ in ("None", "[]", "True", "['q_proj'"):
        assert repr_ not in config, repr_


def test_grpo_loss_chart_is_labelled_policy_loss(client, member, qa_version, tiny_base_model):
    run = _run(member, qa_version, base_model=tiny_base_model, method="grpo")
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert "<h2>Policy loss</h2>" in html and 'id="grpo-loss-note"' in html
    lora = _run(member, qa_version, base_model=tiny_base_model, method="lora")
    html = client.get(f"/runs/{lora.pk}/").content.decode()
    assert "<h2>Loss</h2>" in html and "grpo-loss-note" not in html


@pytest.mark.parametrize("method,title", [("kto", "Preference (KTO)"), ("dpo", "Preference (DPO)"),
                                          ("grpo", "KL penalty (GRPO)")])
def test_preference_section_is_titled_for_the_method(client, member, qa_version, tiny_base_model, method, title):
    client.force_login(member)
    html = client.get(f"/runs/new/?dataset_version={qa_version.pk}&method={method}").content.decode()
    start = html.index('data-hp-group="preference"')
    summary = html[start:html.index("</summary>", start)]
    assert summary.endswith(title), summary
