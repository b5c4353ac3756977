"""The validation split ratio: HUB_VALIDATION_SPLIT, the upload form and the API accept [0, 0.5] only."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.datasets.models import Dataset
from training_hub.env import env_float

from .conftest import good_rows

ROOT = Path(__file__).resolve().parents[2]


def _jsonl(rows):
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_env_float_max_value(monkeypatch):
    monkeypatch.setenv("X_RATIO", "0.5")
    assert env_float("X_RATIO", 0.1, min_value=0.0, max_value=0.5) == 0.5
    for bad in ("1.5", "0.51", "nan", "inf"):
        monkeypatch.setenv("X_RATIO", bad)
        with pytest.raises(ImproperlyConfigured, match="X_RATIO"):
            env_float("X_RATIO", 0.1, min_value=0.0, max_value=0.5)
    monkeypatch.setenv("X_RATIO", "-0.1")
    with pytest.raises(ImproperlyConfigured, match="below"):
        env_float("X_RATIO", 0.1, min_value=0.0, max_value=0.5)
    monkeypatch.setenv("X_RATIO", "7")  # no max given: unchanged behaviour
    assert env_float("X_RATIO", 0.1, min_value=0.0) == 7.0


@pytest.mark.parametrize("value,ok", [("1.5", False), ("1", False), ("0.3", True)])
def test_settings_refuse_a_validation_split_out_of_range(value, ok):
    env = {**os.environ, "HUB_VALIDATION_SPLIT": value, "DJANGO_SETTINGS_MODULE": "training_hub.settings"}
    p = subprocess.run([sys.executable, "-c", "from django.conf import settings; print(settings.HUB_VALIDATION_SPLIT)"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if ok:
        assert p.returncode == 0 and p.stdout.strip() == value, p.stderr
    else:
        assert p.returncode != 0 and "ImproperlyConfigured" in p.stderr and "HUB_VALIDATION_SPLIT" in p.stderr


@pytest.mark.parametrize("ratio", ["1.5", "1", "0.6", "-0.1", "nan", "inf", "abc"])
def test_api_refuses_split_ratio_out_of_range(api, ratio):
    r = api.post("/api/datasets", {"file": SimpleUploadedFile("a.jsonl", _jsonl(good_rows(4))), "name": "s",
                                   "split_ratio": ratio})
    assert r.status_code == 422
    err = r.json()["errors"][0]
    assert err["field"] == "split_ratio" and "0.5" in err["message"]
    assert not Dataset.objects.exists()


def test_api_accepts_split_ratio_in_range(api):
    r = api.post("/api/datasets", {"file": SimpleUploadedFile("a.jsonl", _jsonl(good_rows(4))), "name": "s",
                                   "split_ratio": "0.25"})
    assert r.status_code in (200, 201), r.content
    assert Dataset.objects.get().versions.get().split_ratio == 0.25


@pytest.mark.parametrize("ratio", ["1.5", "1", "-0.1", "nan"])
def test_form_refuses_split_ratio_out_of_range(client, member, ratio):
    client.force_login(member)
    r = client.post("/datasets/upload/", {"name": "s", "target": "local", "split_ratio": ratio,
                                          "file": SimpleUploadedFile("a.jsonl", _jsonl(good_rows(4)))})
    assert r.status_code == 422
    html = r.content.decode()
    assert "field-error" in html and ("less than or equal to 0.5" in html or "greater than or equal to 0" in html
                                      or "Enter a number" in html)
    assert r.context["form"].errors.get("split_ratio")
    assert not Dataset.objects.exists()
