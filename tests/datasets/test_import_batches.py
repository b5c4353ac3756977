"""Imports never hold one long transaction (issue 7, "Database lock"): rows are committed in batches inline
and on the worker, the version stays `importing` until one short write marks it ready, a failure leaves no
rows and keeps the raw upload, and only uploads that take about a second are parsed in the request."""
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.datasets import services
from apps.datasets.models import DatasetVersion, Example
from apps.datasets.services import imports, versions
from apps.datasets.validation import tokens
from tests.datasets.conftest import good_rows, write_jsonl

pytestmark = pytest.mark.django_db


def _file(tmp_path, rows, name="data.jsonl"):
    return str(write_jsonl(tmp_path / name, rows))


def _probe_writes(monkeypatch, seen: list):
    """Record, for every example row built, whether a transaction is open and the version's status as
    another reader would see it."""
    real = versions.example_row

    def probe(version, a):
        seen.append((connection.in_atomic_block,
                     DatasetVersion.objects.filter(pk=version.pk).values_list("status", flat=True).first()))
        return real(version, a)
    monkeypatch.setattr(versions, "example_row", probe)
    monkeypatch.setattr(versions, "INSERT_BATCH", 5)


@pytest.mark.django_db(transaction=True)  # no test transaction around it: what production sees
def test_inline_import_commits_in_batches_and_is_ready_only_at_the_end(member, tmp_path, monkeypatch):
    seen: list = []
    _probe_writes(monkeypatch, seen)
    v = services.dataset_import(user=member, name="batched", file=_file(tmp_path, good_rows(30)))
    assert v.status == "ready" and v.examples.count() == 30 == v.example_count
    assert len(seen) == 30
    assert not any(in_tx for in_tx, _ in seen), "an inline import ran inside one transaction"
    assert {status for _, status in seen} == {"importing"}


@pytest.mark.django_db(transaction=True)
def test_worker_import_commits_in_batches(member, tmp_path, monkeypatch):
    v = services.dataset_import(user=member, name="bg", file=_file(tmp_path, good_rows(30)), background=True)
    seen: list = []
    _probe_writes(monkeypatch, seen)
    v = services.version_process(version_id=v.pk)
    assert v.status == "ready" and v.examples.count() == 30
    assert len(seen) == 30 and not any(in_tx for in_tx, _ in seen)
    assert {status for _, status in seen} == {"importing"}


@pytest.mark.django_db(transaction=True)
def test_a_fix_commits_in_batches_and_is_ready_only_at_the_end(member, tmp_path, monkeypatch):
    rows = good_rows(20) + good_rows(20)  # 20 exact duplicates
    v1 = services.dataset_import(user=member, name="dups", file=_file(tmp_path, rows))
    seen: list = []
    _probe_writes(monkeypatch, seen)
    v2 = services.version_fix(user=member, version_id=v1.pk, fix="drop_exact_duplicates")
    assert v2.status == "ready" and v2.example_count == 20 == v2.examples.count()
    assert len(seen) == 20 and not any(in_tx for in_tx, _ in seen)
    assert {status for _, status in seen} == {"importing"}


@pytest.mark.django_db(transaction=True)
def test_failed_inline_import_leaves_no_rows_and_keeps_the_raw_upload(member, tmp_path, monkeypatch):
    real = versions.example_row
    calls = {"n": 0}

    def boom(version, a):
        calls["n"] += 1
        if calls["n"] > 12:
            raise RuntimeError("disk full")
        return real(version, a)
    monkeypatch.setattr(versions, "example_row", boom)
    monkeypatch.setattr(versions, "INSERT_BATCH", 5)
    v = services.dataset_import(user=member, name="f", file=_file(tmp_path, good_rows(30)))
    assert v.status == "failed" and "disk full" in v.error
    assert Example.objects.filter(version=v).count() == 0  # the 10 committed rows were deleted
    assert services.version_source_path(v).is_file()  # the raw upload is kept (retry, or a look at it)
    assert not DatasetVersion.objects.filter(status="ready", dataset=v.dataset).exists()


def test_delete_examples_deletes_in_batches(member, tmp_path, monkeypatch):
    v = services.dataset_import(user=member, name="d", file=_file(tmp_path, good_rows(30)))
    monkeypatch.setattr(versions, "DELETE_BATCH", 7)
    with CaptureQueriesContext(connection) as ctx:
        assert versions.delete_examples(v) == 30
    deletes = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 5  # 7 + 7 + 7 + 7 + 2
    assert Example.objects.filter(version=v).count() == 0


def _upload(api, content: bytes, filename="data.jsonl", **extra):
    return api.post("/api/datasets", {"name": "sized", "file": SimpleUploadedFile(filename, content), **extra})


def _jsonl(rows) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def test_small_upload_is_parsed_in_the_request_and_a_long_one_goes_to_the_worker(api, settings):
    settings.HUB_DATASET_INLINE_MAX_ROWS = 15
    r = _upload(api, _jsonl(good_rows(15)))
    assert r.status_code == 201 and r.json()["status"] == "ready"
    r = _upload(api, _jsonl(good_rows(16)))  # one line over: the worker, with live progress
    assert r.status_code == 202 and r.json()["status"] == "importing"


def test_upload_over_the_size_limit_goes_to_the_worker(api, settings):
    settings.HUB_DATASET_INLINE_MAX_MB = 0.001  # ~1 KB
    r = _upload(api, _jsonl(good_rows(12)))
    assert r.status_code == 202 and r.json()["status"] == "importing"


def test_rows_are_counted_without_parsing(tmp_path, settings):
    settings.HUB_DATASET_INLINE_MAX_ROWS = 10
    settings.HUB_DATASET_INLINE_MAX_MB = 1
    fits = imports.import_fits_inline

    def path(name, data: bytes):
        p = tmp_path / name
        p.write_bytes(data)
        return p

    assert fits(path("ten.jsonl", _jsonl(good_rows(10))))
    assert not fits(path("eleven.jsonl", _jsonl(good_rows(11))))
    no_newline = _jsonl(good_rows(11)).rstrip(b"\n")
    assert not fits(path("eleven-no-newline.jsonl", no_newline))
    # a JSON array on one line: its objects count, not its lines
    assert not fits(path("array.json", json.dumps([{"prompt": f"q{i}", "completion": "a"} for i in range(11)]).encode()))
    assert fits(path("small-array.json", json.dumps([{"prompt": f"q{i}", "completion": "a"} for i in range(5)]).encode()))
    # a zip: the uncompressed members count
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jsonl", _jsonl(good_rows(6)))
        zf.writestr("b.jsonl", _jsonl(good_rows(6)))
    assert not fits(path("two.zip", buf.getvalue()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.txt", b"x" * (2 * 1024 * 1024))  # compresses to a few KB: 2 MB uncompressed
    assert not fits(path("bomb.zip", buf.getvalue()))
    # a folder always goes to the worker
    (tmp_path / "folder").mkdir()
    write_jsonl(tmp_path / "folder" / "a.jsonl", good_rows(2))
    assert not fits(tmp_path / "folder")


def test_parquet_rows_come_from_its_footer(tmp_path, settings):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    settings.HUB_DATASET_INLINE_MAX_ROWS = 10
    settings.HUB_DATASET_INLINE_MAX_MB = 1
    for n, expected in ((10, True), (11, False)):
        p = tmp_path / f"{n}.parquet"
        pq.write_table(pa.table({"prompt": [f"q{i}" for i in range(n)], "completion": ["a"] * n}), p)
        assert imports.import_fits_inline(p) is expected


def test_a_tokenizer_not_loaded_yet_sends_a_small_upload_to_the_worker(member, tmp_path, monkeypatch,
                                                                       tiny_base_model):
    """Loading a tokenizer (transformers, torch) takes seconds: never inside a request."""
    monkeypatch.setattr(tokens, "_COUNTERS", {})
    assert not tokens.counter_loaded("tiny")
    v = services.dataset_import(user=member, name="cold", file=_file(tmp_path, good_rows(12)), base_model="tiny",
                                background=None)
    assert v.status == "importing"
    assert not tokens.counter_loaded("tiny")  # the request loaded nothing
    tokens.counter_for_base_model("tiny")  # the process has it now
    assert tokens.counter_loaded("tiny")
    v = services.dataset_import(user=member, name="warm", file=_file(tmp_path, good_rows(12), "b.jsonl"),
                                base_model="tiny", background=None)
    assert v.status == "ready" and v.stats["tokens"]["base_model"] == "tiny"
