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


def test_an_encoded_stream_is_decoded_and_a_plain_one_read_straight_from_the_transport():
    import gzip

    from apps.proxy import upstream

    async def main(headers, chunks):
        resp = httpx.Response(200, headers=headers, stream=_Chunks(chunks))
        decoded = []
        original = httpx.Response.aiter_bytes

        async def spy(self, *a, **kw):
            decoded.append(True)
            async for b in original(self, *a, **kw):
                yield b

        upstream_aiter, httpx.Response.aiter_bytes = httpx.Response.aiter_bytes, spy
        try:
            lines = [line async for line in upstream.sse_lines(resp)]
        finally:
            httpx.Response.aiter_bytes = upstream_aiter
        return lines, bool(decoded), resp.is_stream_consumed

    gz = gzip.compress(BODY)
    lines, via_httpx, consumed = asyncio.run(main({"content-encoding": "gzip"}, [gz[:10], gz[10:]]))
    assert [line for line in lines if line][0] == 'data: {"a": "héllo wörld ✓"}' and via_httpx
    lines, via_httpx, consumed = asyncio.run(main({}, [BODY]))
    assert [line for line in lines if line][-1] == "data: x" and not via_httpx and consumed
