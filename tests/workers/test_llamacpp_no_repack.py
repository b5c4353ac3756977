"""A llama.cpp build whose tools die from a signal while loading (weight repacking faulting on a virtual CPU) is
marked NO_REPACK once, and its llama-server / llama-perplexity run with --no-repack from then on."""
import os
import stat
import sys
from pathlib import Path

from workers.engine.llamacpp import runner
from workers.engine.llamacpp.toolchain import Toolchain

FAKE_SERVER = r'''#!{python}
import http.server, os, signal, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(" ".join(args) + "\n")
if "--no-repack" not in args:
    os.kill(os.getpid(), signal.SIGSEGV)
port = int(args[args.index("--port") + 1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{"status":"ok"}}')
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
'''

FAKE_PPL = r'''#!{python}
import os, signal, sys
if "--no-repack" not in sys.argv:
    os.kill(os.getpid(), signal.SIGSEGV)
print("[1]3.1,[2]2.9,\nFinal estimate: PPL = 2.9000 +/- 0.1")
'''


def _toolchain(tmp_path: Path) -> Toolchain:
    bin_dir = tmp_path / "build" / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in (("llama-server", FAKE_SERVER), ("llama-perplexity", FAKE_PPL)):
        path = bin_dir / name
        path.write_text(body.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return Toolchain(root=tmp_path, version="b0", bin_dir=bin_dir, source_dir=tmp_path / "src")


def test_a_crash_while_loading_marks_the_build_and_the_server_starts_without_repacking(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_LOG", str(log))
    tc = _toolchain(tmp_path)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert not tc.no_repack
    server = runner.LlamaServer(tc, model, parallel=1, ctx=64).start(timeout=30)
    try:
        calls = log.read_text().splitlines()
        assert len(calls) == 2 and "--no-repack" not in calls[0] and "--no-repack" in calls[1]
        assert (tmp_path / "NO_REPACK").read_text().startswith("llama-server died (signal 11)")
    finally:
        server.stop()
    # a fresh Toolchain object of the same build (another process) reads the marker: straight to --no-repack
    again = Toolchain(root=tmp_path, version="b0", bin_dir=tc.bin_dir, source_dir=tc.source_dir)
    assert again.runtime_args == ["--no-repack"]
    assert runner.perplexity(again, model, "some text")["ppl"] == 2.9


def test_perplexity_retries_once_without_repacking(tmp_path):
    tc = _toolchain(tmp_path)
    out = runner.perplexity(tc, tmp_path / "m.gguf", "text")
    assert out["ppl"] == 2.9 and tc.no_repack
