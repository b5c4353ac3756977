"""apps.proxy.coalesce: ready items leave together, nothing waits for the next network read, and a consumer
that leaves mid-wait still runs the stream's clean-up."""
import asyncio

import pytest

from apps.proxy.coalesce import coalesce


async def _collect(agen):
    return [x async for x in agen]


def test_items_ready_at_once_leave_in_one_piece_and_a_wait_flushes_first():
    events = []

    async def source():
        yield "a"
        yield "b"  # no await between: ready together
        await asyncio.sleep(0.01)
        events.append("after-wait")
        yield "c"
        yield "d"
        await asyncio.sleep(0)  # a bare yield to the loop also counts as waiting
        yield "e"

    async def main():
        out = []
        async for piece in coalesce(source()):
            out.append((piece, list(events)))
        return out

    out = asyncio.run(main())
    # "ab" is handed over before the stream waits (events still empty), then "cd", then "e"
    assert out == [("ab", []), ("cd", ["after-wait"]), ("e", ["after-wait"])]


def test_a_slow_stream_is_not_delayed_or_merged():
    async def source():
        for ch in "xyz":
            await asyncio.sleep(0.005)
            yield ch

    assert asyncio.run(_collect(coalesce(source()))) == ["x", "y", "z"]


def test_bytes_are_joined_as_bytes():
    async def source():
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"

    assert asyncio.run(_collect(coalesce(source()))) == [b"data: 1\n\ndata: 2\n\n"]


def test_a_failure_after_ready_items_sends_them_then_raises():
    async def source():
        yield "first"
        raise RuntimeError("upstream broke")

    async def main():
        got = []
        with pytest.raises(RuntimeError, match="upstream broke"):
            async for piece in coalesce(source()):
                got.append(piece)
        return got

    assert asyncio.run(main()) == ["first"]


def test_a_failure_after_a_wait_propagates():
    async def source():
        yield "a"
        await asyncio.sleep(0.001)
        raise ValueError("late")

    async def main():
        got = []
        with pytest.raises(ValueError, match="late"):
            async for piece in coalesce(source()):
                got.append(piece)
        return got

    assert asyncio.run(main()) == ["a"]


def test_closing_while_the_stream_waits_runs_its_cleanup():
    cleaned = []
    release = None

    async def source():
        nonlocal release
        try:
            yield "a"
            release = asyncio.get_running_loop().create_future()
            await release  # waits forever unless cancelled
            yield "never"
        finally:
            await asyncio.sleep(0)  # clean-up that awaits (closing an upstream connection)
            cleaned.append("closed")

    async def main():
        agen = coalesce(source())
        assert await agen.__anext__() == "a"
        await agen.aclose()  # the consumer leaves while source() waits in `await release`

    asyncio.run(main())
    assert cleaned == ["closed"]


def test_cancelling_the_consumer_task_mid_wait_reaches_the_stream():
    seen = []

    async def source():
        try:
            yield "a"
            await asyncio.sleep(10)
            yield "b"
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    async def consume(out):
        async for piece in coalesce(source()):
            out.append(piece)

    async def main():
        out = []
        task = asyncio.create_task(consume(out))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return out

    assert asyncio.run(main()) == ["a"]
    assert seen == ["cancelled", "finally"]


# --- with_last: a stream's final piece known without waiting ---------------------------------------------
def test_with_last_marks_the_last_item_only_when_the_end_is_ready():
    from apps.proxy.coalesce import with_last

    async def source(end_waits: bool):
        yield "a"
        await asyncio.sleep(0.01)
        yield "b"
        yield "c"
        if end_waits:
            await asyncio.sleep(0.01)

    assert asyncio.run(_collect(with_last(source(False)))) == [("a", False), ("b", False), ("c", True)]
    assert asyncio.run(_collect(with_last(source(True)))) == [("a", False), ("b", False), ("c", False)]

    async def empty():
        return
        yield  # noqa: unreachable - an async generator with no items

    assert asyncio.run(_collect(with_last(empty()))) == []


def test_with_last_hands_an_item_over_before_a_wait_and_a_failure():
    from apps.proxy.coalesce import with_last

    seen = []

    async def source():
        yield "a"
        seen.append("waiting")
        await asyncio.sleep(0.01)
        yield "b"
        raise RuntimeError("upstream broke")

    async def main():
        got = []
        with pytest.raises(RuntimeError):
            async for item, last in with_last(source()):
                got.append((item, last, list(seen)))
        return got

    # "a" is handed over while the stream waits (before "waiting" is even reached, the step ran once), "b" before
    # the failure propagates
    assert asyncio.run(main()) == [("a", False, ["waiting"]), ("b", False, ["waiting"])]


def test_the_lean_handler_sends_a_stream_s_last_piece_with_its_end():
    from django.http import StreamingHttpResponse

    from training_hub.asgi_lean import _LeanHandler

    async def run(end_waits: bool):
        async def body():
            yield b"data: 1\n\n"
            await asyncio.sleep(0.01)
            yield b"data: [DONE]\n\n"
            if end_waits:
                await asyncio.sleep(0.01)

        sent = []

        async def send(message):
            sent.append(message)

        response = StreamingHttpResponse(body(), content_type="text/event-stream")
        response["x-test"] = "1"
        await _LeanHandler().send_response(response, send)
        return sent

    sent = asyncio.run(run(False))
    assert sent[0]["type"] == "http.response.start" and (b"x-test", b"1") in sent[0]["headers"]
    assert [(m.get("body"), m.get("more_body")) for m in sent[1:]] == [
        (b"data: 1\n\n", True), (b"data: [DONE]\n\n", False)]  # the end rides on the last piece: no empty message
    sent = asyncio.run(run(True))
    assert [(m.get("body"), m.get("more_body", False)) for m in sent[1:]] == [
        (b"data: 1\n\n", True), (b"data: [DONE]\n\n", True), (None, False)]
