"""Loading a token counter: the tokenizer class AutoTokenizer chose for a model folder is remembered, and a later
load of the very same files (another process: the CLI, a fresh worker) calls that class directly — no config
read, no torch import — and yields the same tokenizer and the same counts; any change to the folder's files
makes AutoTokenizer choose again."""
from __future__ import annotations

import json
import os
import shutil

import transformers

from apps.datasets.validation import tokens

EXAMPLES = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I reverse a list?"},
                  {"role": "assistant", "content": "Use reversed(items) or items[::-1]."}]},
    {"messages": [
        {"role": "user", "content": "What is the weather in town 3?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": json.dumps({"town": 3})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny, 13 degrees."},
        {"role": "assistant", "content": "It is sunny in town 3, about 13 degrees."}],
     "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]},
]


def test_the_class_autotokenizer_chose_is_reused_for_the_same_files(tiny_model_dir, tmp_path, monkeypatch,
                                                                     settings):
    settings.HUB_DATA_DIR = tmp_path / "hub"
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    real = transformers.AutoTokenizer.from_pretrained
    calls = []

    def auto(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", auto)
    first = tokens.TokenCounter(folder, name="tiny")
    assert calls == [str(folder)]
    memo = json.loads((tmp_path / "hub" / "cache" / "tokenizer-classes.json").read_text())
    assert list(memo.values()) == [f"{type(first.tokenizer).__module__}:{type(first.tokenizer).__qualname__}"]

    second = tokens.TokenCounter(folder, name="tiny")  # as a new process would load it
    assert calls == [str(folder)]  # AutoTokenizer was not asked again
    assert type(second.tokenizer) is type(first.tokenizer) and first.has_template and second.has_template
    assert second.backend.to_str() == first.backend.to_str()
    assert second.tokenizer.chat_template == first.tokenizer.chat_template
    assert second.count(EXAMPLES) == first.count(EXAMPLES) and second.context_length == first.context_length

    config = folder / "tokenizer_config.json"  # the files change: AutoTokenizer decides again
    st = config.stat()
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    tokens.TokenCounter(folder, name="tiny")
    assert calls == [str(folder)] * 2


def test_a_remembered_class_that_fails_falls_back_to_autotokenizer(tiny_model_dir, tmp_path, monkeypatch, settings):
    settings.HUB_DATA_DIR = tmp_path / "hub"
    key = tokens._memo_key(str(tiny_model_dir))
    memo = tmp_path / "hub" / "cache" / "tokenizer-classes.json"
    memo.parent.mkdir(parents=True)
    memo.write_text(json.dumps({key: "transformers.no_such_module:Tokenizer"}))
    counter = tokens.TokenCounter(tiny_model_dir, name="tiny")
    assert counter.count(EXAMPLES[:1])[0][0] > 0
    cls = type(counter.tokenizer)
    assert json.loads(memo.read_text())[key] == f"{cls.__module__}:{cls.__qualname__}"  # remembered anew
