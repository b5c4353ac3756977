"""notebooks/quickstart.ipynb, executed top to bottom with nbclient against the real stack (tests/sdk/conftest.py):
upload → validate → train (a few steps of the tiny model) → evaluate → deploy → chat, with its plots inline."""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def _kernel_or_skip() -> None:
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (make setup installs it)")
    del nbclient
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no python3 Jupyter kernel (ipykernel is not installed: make setup installs it)")


def test_quickstart_notebook_runs_top_to_bottom(stack, monkeypatch, tmp_path):
    _kernel_or_skip()
    import nbformat
    from nbclient import NotebookClient

    # the kernel inherits this process's environment: the hub, the tiny model, short training
    for key, value in {"HUB_URL": stack.url, "HUB_API_KEY": stack.api_key, "HUB_BASE_MODEL": "tiny",
                       "HUB_QUICKSTART_STEPS": "4", "HUB_QUICKSTART_EVAL_TOKENS": "4",
                       "XDG_CONFIG_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "refused as expected: {'hyperparameters.learning_rate'" in text
    assert "succeeded in" in text and "quickstart -> version" in text
    assert "hub.chat: " in text
    assert "mean reward" in text or "has no reward-based evaluations" in text
    plots = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plots) == 2  # the token histogram and the loss curve
    loss = plots[1]["data"]["application/vnd.plotly.v1+json"]["data"][0]
    assert len(loss["y"]) >= 2 and loss["name"] == "training loss"
    tables = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert any("| validation loss |" in t for t in tables) and any("| prompt | base model | trained |" in t
                                                                    for t in tables)
