import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.datasets.models import DatasetVersion

from .conftest import good_rows, write_jsonl


def _run(*args):
    out = io.StringIO()
    try:
        call_command("validate_dataset", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


@pytest.mark.django_db
def test_validate_dataset_json_and_exit_codes(tmp_path):
    ok = write_jsonl(tmp_path / "ok.jsonl", good_rows(12))
    code, out = _run(str(ok), "--json", "--structure-only")
    body = json.loads(out)
    assert code == 0 and body["format"] == "jsonl" and body["examples"] == 12 and body["errors"] == []
    bad = write_jsonl(tmp_path / "bad.jsonl", good_rows(10) + ['{"messages": 3}', {"text": "x"}])
    code, out = _run(str(bad), "--json", "--target", "together")
    body = json.loads(out)
    assert code == 1
    assert [(e["line"], e["code"]) for e in body["errors"]] == [(11, "messages_not_list"), (12, "mixed_formats")]
    assert set(body["errors"][0]) >= {"line", "code", "message"}
    code, out = _run(str(bad))
    assert code == 1 and "bad.jsonl:11 [messages_not_list]" in out


@pytest.mark.django_db
def test_validate_dataset_unknown_base_model(tmp_path):
    ok = write_jsonl(tmp_path / "ok.jsonl", good_rows(12))
    with pytest.raises(CommandError):
        call_command("validate_dataset", str(ok), "--base-model", "nope", stdout=io.StringIO())


@pytest.mark.django_db
def test_validate_with_registered_base_model(tmp_path, tiny_base_model):
    ok = write_jsonl(tmp_path / "ok.jsonl", good_rows(12))
    code, out = _run(str(ok), "--json", "--base-model", "tiny")
    body = json.loads(out)
    assert code == 0 and body["stats"]["tokens"]["base_model"] == "tiny" and body["stats"]["tokens"]["total"] > 0


@pytest.mark.django_db
def test_import_dataset_prints_version_id(tmp_path, make_user):
    make_user("admin", "admin")
    ok = write_jsonl(tmp_path / "ok.jsonl", good_rows(12))
    out = io.StringIO()
    call_command("import_dataset", str(ok), "--name", "cli", stdout=out, stderr=io.StringIO())
    v = DatasetVersion.objects.get(pk=int(out.getvalue().strip()))
    assert v.dataset.name == "cli" and v.example_count == 12
