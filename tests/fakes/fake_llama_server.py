#!/usr/bin/env python3
"""A stand-in for llama.cpp's `llama-server` (tests without a llama.cpp build): the same command line, /health, and
the native /completion endpoint with its streamed event shapes (`content`, `stop`, `stop_type` eos|limit|word,
`stopping_word`, `tokens_predicted`).

What it answers comes from the environment: FAKE_LLAMA_REPLY (the text, split into one event per word, default
"Hello from llama"), FAKE_LLAMA_FAIL=load (exits at start-up with llama.cpp's error for a file that is not a GGUF).
Every /completion body it receives is appended as a JSON line to FAKE_LLAMA_LOG when set."""
from __future__ import annotations

import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def arg(flag: str, default=None):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else default


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self._json(200, {"status": "ok"})
        return self._json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if os.environ.get("FAKE_LLAMA_LOG"):
            with open(os.environ["FAKE_LLAMA_LOG"], "a") as fh:
                fh.write(json.dumps(body) + "\n")
        if self.path != "/completion":
            return self._json(404, {"error": {"code": 404, "message": "File Not Found"}})
        if body.get("json_schema") == {"not": {}}:
            return self._json(400, {"error": {"code": 400, "message": "JSON schema conversion failed",
                                              "type": "invalid_request_error"}})
        reply = os.environ.get("FAKE_LLAMA_REPLY", "Hello from llama")
        pieces = re.findall(r"\S+\s*|\s+", reply)
        limit = int(body.get("n_predict", -1))
        events, stop_type, word, text = [], "eos", "", ""
        for i, piece in enumerate(pieces):
            if 0 <= limit <= i:
                stop_type = "limit"
                break
            hit = next((s for s in body.get("stop") or [] if s in text + piece), None)
            if hit:
                cut = (text + piece).index(hit)
                if cut > len(text):
                    events.append((text + piece)[len(text):cut])
                stop_type, word = "word", hit
                break
            events.append(piece)
            text += piece
        n_prompt = len(body.get("prompt") or [])
        if not body.get("stream"):
            return self._json(200, {"content": "".join(events), "stop": True, "stop_type": stop_type,
                                    "stopping_word": word, "tokens_predicted": len(events),
                                    "tokens_evaluated": n_prompt})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(obj):
            data = f"data: {json.dumps(obj)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        for i, piece in enumerate(events):
            send({"index": 0, "content": piece, "tokens": [i], "stop": False, "id_slot": 0,
                  "tokens_predicted": i + 1, "tokens_evaluated": n_prompt})
        send({"index": 0, "content": "", "tokens": [], "stop": True, "stop_type": stop_type, "stopping_word": word,
              "tokens_predicted": len(events), "tokens_evaluated": n_prompt, "timings": {}})
        self.wfile.write(b"0\r\n\r\n")


def main() -> None:
    if "--version" in sys.argv:
        print("version: 11434 (fake)\nbuilt with fake for tests", file=sys.stderr)
        return
    model = arg("-m")
    if os.environ.get("FAKE_LLAMA_FAIL") == "load" or not model or not os.path.isfile(model):
        print(f"0.00.003.941 E gguf_init_from_reader: invalid magic characters: 'xxxx', expected 'GGUF'",
              file=sys.stderr)
        print("0.00.003.950 E main: exiting due to model loading error", file=sys.stderr)
        sys.exit(1)
    server = ThreadingHTTPServer(("127.0.0.1", int(arg("--port", "8080"))), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
