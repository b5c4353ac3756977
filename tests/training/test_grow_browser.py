"""Grow in a real browser (Debian's chromium through Playwright; HTML from Django's test client): the new-run
form with method grow shows the model version to grow, "Grow into" and the noise and hides the base model and
the other methods' rows; the page of a real (tiny) grow run shows the parent's loss, the grown model's before
training and after, without raw JSON. With HUB_SHOTS=<folder> the pages are saved as screenshots."""
from __future__ import annotations

import pytest

from tests.training.test_dpo_browser import _shot
from tests.training.test_grow import scratch_version  # noqa: F401 - the fixture
from tests.training.test_run_page_browser import page_for  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db, pytest.mark.browser]


def test_new_run_form_with_method_grow(client, member, qa_version, scratch_version, page_for):  # noqa: F811
    client.force_login(member)
    html = client.get(f"/runs/new/?dataset_version={qa_version.pk}&method=grow"
                      f"&parent_version={scratch_version.pk}").content.decode()
    page = page_for(html, "/runs/new/", [])
    assert page.input_value("select[name=method]") == "grow"
    assert page.input_value("select[name=parent_version]") == str(scratch_version.pk)
    visible = page.evaluate("""() => {
        const form = document.getElementById('run-form'), out = {};
        for (const name of ['parent_version', 'target_size', 'grow_noise', 'learning_rate', 'stage1_version',
                            'base_model', 'size', 'vocab_size', 'lora_r', 'beta']) {
            const el = form.elements[name];
            out[name] = !el.disabled && !!el.offsetParent;
        }
        return out;
    }""")
    assert visible == {"parent_version": True, "target_size": True, "grow_noise": True, "learning_rate": True,
                       "stage1_version": True, "base_model": False, "size": False, "vocab_size": False,
                       "lora_r": False, "beta": False}
    assert page.get_attribute("#run-form input[name=grow_noise]", "placeholder") == "0.05"
    assert page.get_attribute("#run-form input[name=learning_rate]", "placeholder") == "0.0005"  # halved
    options = page.eval_on_selector("select[name=target_size]", "s => [...s.options].map(o => o.textContent)")
    assert options[:3] == ["default (next)", "next", "nano"]
    _shot(page, "new-run-grow.png")
    page.select_option("select[name=method]", "scratch")
    assert page.is_hidden("#run-form select[name=target_size]") and page.is_visible("#run-form select[name=size]")


@pytest.mark.django_db(transaction=True)
def test_grow_run_page_shows_the_losses(client, member, qa_version, scratch_version, page_for):  # noqa: F811
    from apps.training import services
    from workers.training import train_run

    run = services.run_create(user=member, dataset_version_id=qa_version.pk, method="grow",
                              parent_version_id=scratch_version.pk,
                              hyperparameters={"target_size": "micro", "max_steps": 3, "learning_rate": 3e-3,
                                               "eval_max_new_tokens": 4})
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    client.force_login(member)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    page = page_for(html, f"/runs/{run.pk}/", [])
    card = page.inner_text("#grow-check")
    assert f"Grown from version #{scratch_version.pk}" in card
    assert "hidden 64 · 2 layers · 4 heads of 16 · intermediate 256 → hidden 128 · 4 layers · 4 heads of 32" in card
    grow = run.summary["grow"]
    assert page.inner_text("#grow-parent-loss") == f"{grow['parent_loss']:.6f}"
    assert page.inner_text("#grow-start-loss") == f"{grow['grown_loss']:.6f}"
    assert page.is_visible("#grow-trained-loss")
    assert "relative (tolerance 1e-04)" in page.inner_text("#grow-diff")
    assert "{" not in card and "None" not in card
    _shot(page, "run-grow.png")
