"""apps.proxy.upstream.sse_lines: the same lines as httpx's aiter_lines, whatever the read boundaries."""
import asyncio

import httpx
import pytest

from apps.proxy.upstream import sse_lines

BODY = 'data: {"a": "héllo wörld ✓"}\n\ndata: [DONE]\r\n\r\n: comment\rdata: x\n'.encode()


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks):
        self.chunks = chunks

    async def __aiter__(self):
        for c in self.chunks:
            yield c


def _lines(chunks, fn):
    async def main():
        resp = httpx.Response(200, stream=_Chunks(chunks))
        if fn == "httpx":
            return [line async for line in resp.aiter_lines()]
        return [line async for line in sse_lines(resp)]
    return asyncio.run(main())


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, len(BODY)])
def test_lines_match_httpx_for_any_read_size(size):
    chunks = [BODY[i:i + size] for i in range(0, len(BODY), size)]
    ours = [line for line in _lines(chunks, "ours") if line]  # a \r\n split across reads may add an empty line
    assert ours == [line for line in _lines(chunks, "httpx") if line]
    assert ours == ['data: {"a": "héllo wörld ✓"}', "data: [DONE]", ": comment", "data: x"]


def test_blank_lines_between_events_are_kept_and_a_last_line_without_newline_is_given():
    assert _lines([b"data: 1\n\ndata: 2"], "ours") == ["data: 1", "", "data: 2"]
