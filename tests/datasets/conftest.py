import json

import pytest


def chat(user, assistant, system=None, **extra):
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": msgs, **extra}


def good_rows(n=12):
    topics = ["lists", "dicts", "sets", "tuples", "strings", "files", "loops", "classes", "decorators", "generators",
              "modules", "exceptions", "threads", "sockets", "regexes", "dates"]
    return [chat(f"Tell me something useful about Python {topics[i % len(topics)]} number {i}.",
                 f"Here is a fact about {topics[i % len(topics)]}: item {i} shows how they behave in real programs.")
            for i in range(n)]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


@pytest.fixture
def jsonl(tmp_path):
    def _make(rows, name="data.jsonl"):
        return write_jsonl(tmp_path / name, rows)
    return _make


@pytest.fixture(scope="session", autouse=True)
def _default_tokenizer_loaded():
    """These tests stand for a web process whose default tokenizer is already loaded, so small uploads
    are parsed in the request whatever ran before (a process without it sends even a small upload to the
    worker: see test_import_batches.py)."""
    from apps.datasets.validation.tokens import counter_for_base_model

    counter_for_base_model(None)
