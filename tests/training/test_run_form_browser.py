"""The new-run form against the live server (issue 14 #4): a preset fills the form, the preview of the API
call and the `hub runs create` command follows it live, and saved settings fill the method back in.
With DASH_SHOTS=<folder> the form is saved there as a 1440x900 screenshot."""
from __future__ import annotations

import os

import pytest

from tests.browser import logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_preset_fills_the_form_and_the_preview_follows(browser, live_server, member, qa_version, tiny_base_model):
    from apps.training.services.saved_configs import saved_config_save

    saved_config_save(user=member, name="kto try", values={"method": "kto", "backend": "local",
                                                           "hyperparameters": {"beta": 0.3, "max_steps": 5}})
    ctx, page, errors = logged_in_page(browser, live_server, member)
    page.goto(f"{live_server.url}/runs/new/?dataset_version={qa_version.pk}")
    page.wait_for_selector("#preview-cli")
    assert "hub runs create --dataset-version" in page.inner_text("#preview-cli")
    page.select_option("#start-from", "preset:quick")
    assert page.input_value("#run-form input[name=max_steps]") == "20"
    page.wait_for_function("() => document.getElementById('preview-cli').textContent.includes('--max-steps 20')")
    assert '"eval_steps": 10' in page.inner_text("#preview-api")
    page.fill("#run-form input[name=learning_rate]", "1e-5")
    page.wait_for_function("() => document.getElementById('preview-cli').textContent.includes('--lr 1e-05')")
    page.select_option("#start-from", page.eval_on_selector(
        "#start-from", "s => [...s.options].find(o => o.textContent === 'kto try').value"))
    assert page.input_value("select[name=method]") == "kto"
    assert page.input_value("#run-form input[name=learning_rate]") == ""  # emptied: the default shows
    page.wait_for_function("() => document.getElementById('preview-cli').textContent.includes('--method kto')")
    assert "-p beta=0.3" in page.inner_text("#preview-cli")
    assert page.inner_text("[data-hp-group=preference] summary").strip() == "Preference (KTO)"
    if os.environ.get("DASH_SHOTS"):
        page.screenshot(path=os.path.join(os.environ["DASH_SHOTS"], "new_run_form.png"), full_page=True)
    assert errors == []
    ctx.close()
