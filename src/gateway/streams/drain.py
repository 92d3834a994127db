"""Draining on SIGTERM, so a rolling restart does not cut answers mid-way.

The first SIGTERM (or SIGINT) does not stop the server at once. The gateway
keeps listening but refuses new chats (503), lets the open streams finish
for up to SHUTDOWN_GRACE_SECONDS, ends whichever are left with an ``error``
event (and a cancel to the workers), and only then hands the signal to the
server, which closes its sockets and runs the lifespan shutdown. A second
signal skips the wait.

Why intercept the signal: uvicorn, on SIGTERM, closes its listening sockets
at once (new clients get "connection refused", never a 503) and
sse-starlette cancels every open stream without a terminal event. Both act
on the server's signal handler, so the gateway wraps that handler while it
runs. The handler is found as sse-starlette finds it: a bound method of a
server with ``should_exit`` (uvicorn's ``Server``, also in each process of
``--workers N``). Anywhere else (tests, other servers) nothing is wrapped.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

from gateway.state import Gateway

log = structlog.get_logger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# After the grace: time for the cut streams to send their error event.
_FLUSH_SECONDS = 2.0
_POLL_SECONDS = 0.1


async def _until(done: Callable[[], bool], seconds: float) -> None:
    # Polling is plenty for a shutdown, and keeps the router free of drain hooks.
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(_POLL_SECONDS)


async def drain(gateway: Gateway, grace: float, flush: float = _FLUSH_SECONDS) -> None:
    """Refuse new streams, wait up to ``grace`` for the open ones, cut the rest."""
    replies = gateway.replies
    gateway.draining = True
    log.info("Draining", open_streams=replies.open_streams, grace_seconds=grace)
    await _until(lambda: replies.open_streams == 0, grace)
    if replies.open_streams:
        log.warning("Grace period over; ending open streams", open_streams=replies.open_streams)
        replies.cut_all("shutdown")
        await _until(lambda: replies.open_streams == 0, flush)
    log.info("Drained", open_streams=replies.open_streams)


def _is_server_handler(handler: Any) -> bool:
    return hasattr(getattr(handler, "__self__", None), "should_exit")


class DrainOnSignal:
    """Wraps the server's SIGTERM/SIGINT handler with a drain (see above)."""

    def __init__(self, gateway: Gateway, grace: float) -> None:
        self._gateway = gateway
        self._grace = grace
        self._previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
        self._signalled: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def should_exit(self) -> bool:
        """sse-starlette polls this on the SIGTERM handler's owner to end its
        streams: the server's own flag, which is set once the drain hands over."""
        handler = next(iter(self._previous.values()), None)
        return bool(getattr(getattr(handler, "__self__", None), "should_exit", False))

    def install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        self._loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            handler = signal.getsignal(sig)
            if _is_server_handler(handler):
                self._previous[sig] = handler  # type: ignore[assignment]
                signal.signal(sig, self._on_signal)
        return bool(self._previous)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only hand work to the loop from here.
        assert self._loop is not None
        if self._signalled is not None:
            self._loop.call_soon_threadsafe(self._hand_over, sig, True)
            return
        self._signalled = sig
        self._loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await drain(self._gateway, self._grace)
        finally:
            assert self._signalled is not None
            self._hand_over(self._signalled, False)

    def _hand_over(self, sig: int, forced: bool) -> None:
        if forced:
            log.warning("Second signal: stopping without waiting for streams")
            self._gateway.draining = True
            self._gateway.replies.cut_all("shutdown")
        handler = self._previous.get(sig) or next(iter(self._previous.values()))
        handler(sig, None)
