"""Coalescing a relayed stream's writes: every event that is ready leaves in one write.

A streamed answer reaches the hub in network reads that often hold several SSE events (the upstream's
first lines with the hub's own first delta, a burst of tokens from a batched server, the final chunk, the
usage and `[DONE]` together). Relaying them one `send()` at a time costs one trip through Django's
response loop, uvicorn and a socket write per event — and the client one read per event. `coalesce(agen)`
yields the same text, but joins every item the stream can produce *without waiting* into one piece, and
hands a piece over as soon as the next item would wait for the network. Nothing is held back: an event that
arrives alone (a model decoding one token at a time) is written alone, at once.

How it knows, without a timer or a peek at httpx's buffers: it steps the stream's `__anext__()` coroutine
by hand. Finishing on the first step means the item was ready; yielding a future means it waits — then the
pieces so far are flushed and the same coroutine is resumed under the event loop (`_Resume`, the `await`
protocol done by hand: sends, throws and cancellation go through unchanged).
"""
from __future__ import annotations

from typing import AsyncIterator


class _Resume:
    """Await a coroutine that has already been stepped once and yielded `first`."""

    __slots__ = ("coro", "first")

    def __init__(self, coro, first):
        self.coro, self.first = coro, first

    def __await__(self):
        coro, pending = self.coro, self.first
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # CancelledError and anything thrown in: to the stream, as await does
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def _join(parts: list):
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], bytes):
        return b"".join(p if isinstance(p, bytes) else p.encode() for p in parts)
    return "".join(p if isinstance(p, str) else p.decode() for p in parts)


async def _abandon(step, exc: BaseException, pending) -> None:
    """The consumer left (aclose, cancellation) while `step` waits: throw `exc` into the stream where it
    waits, as a cancellation would, and let its clean-up (which may await: closing the upstream) finish."""
    try:
        pending = step.throw(exc)
    except BaseException:  # noqa: BLE001 - finished: re-raised exc, ended, or failed while closing
        return
    try:
        await _Resume(step, pending)
    except BaseException:  # noqa: BLE001
        return


_READY, _END, _FAILED, _WAITS = "ready", "end", "failed", "waits"


def _step(it) -> tuple:
    """Run the stream's next `__anext__()` by hand, once: `(_READY, item)` when an item was ready without waiting,
    `(_END, None)` when it ended, `(_FAILED, exception)` when it failed, `(_WAITS, (step, pending))` when it waits —
    then `await _Resume(step, pending)` goes on with the same step (and `_abandon` drops it)."""
    step = it.__anext__()
    try:
        pending = step.send(None)
    except StopIteration as stop:
        return _READY, stop.value
    except StopAsyncIteration:
        return _END, None
    except Exception as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
        return _FAILED, exc
    return _WAITS, (step, pending)


async def _aclose(it) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


async def coalesce(chunks: AsyncIterator) -> AsyncIterator:
    """Yield the text of `chunks` (str or bytes items), every run of items that were ready at once joined."""
    it = chunks.__aiter__()
    ready: list = []
    try:
        while True:
            kind, value = _step(it)
            if kind == _READY:
                ready.append(value)
                continue
            if kind == _END:
                break
            if kind == _FAILED:  # the stream failed: what was ready still leaves first, as it would have
                if ready:
                    yield _join(ready)
                    ready = []
                raise value
            step, pending = value
            if ready:  # the next item waits for the network: what is ready leaves now
                try:
                    yield _join(ready)
                except BaseException as exc:  # closed or cancelled while `step` is half-run
                    await _abandon(step, exc, pending)
                    raise
                ready = []
            try:
                item = await _Resume(step, pending)
            except StopAsyncIteration:
                break
            ready.append(item)
        if ready:
            yield _join(ready)
    finally:
        await _aclose(it)


async def with_last(chunks: AsyncIterator) -> AsyncIterator[tuple]:
    """Yield `(item, last)` for each item of `chunks`. `last` is known without waiting: after an item, the stream's
    next step runs once by hand; if the stream ends right there the item is the last, and if the step waits the item
    is handed over (not last) before the wait. So a response's final piece can leave together with its end (one
    write instead of two) while nothing is held back. An item handed over before a wait that then ends the stream is
    followed by nothing: the caller closes the response itself."""
    it = chunks.__aiter__()
    try:
        try:
            item = await it.__anext__()
        except StopAsyncIteration:
            return
        while True:
            kind, value = _step(it)
            if kind == _READY:
                yield item, False
                item = value
                continue
            if kind == _END:  # the stream ended without waiting: this item is the last
                yield item, True
                return
            if kind == _FAILED:  # the stream failed: the ready item still leaves first, as it would have
                yield item, False
                raise value
            step, pending = value
            try:
                yield item, False
            except BaseException as exc:  # closed or cancelled while `step` is half-run
                await _abandon(step, exc, pending)
                raise
            try:
                item = await _Resume(step, pending)
            except StopAsyncIteration:
                return
    finally:
        await _aclose(it)
