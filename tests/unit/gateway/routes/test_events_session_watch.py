"""``SessionWatch``: the re-check that ends a document event stream once
the credential it was opened with stops authenticating (the end-to-end
behaviour is tests/e2e/test_document_events_sessions.py)."""

from __future__ import annotations

import asyncpg

from gateway.routes.document_events import SessionWatch, ended_sse
from shared.errors import AuthError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Check:
    """Counts its runs; raises ``fails`` when set."""

    def __init__(self) -> None:
        self.runs = 0
        self.fails: Exception | None = None

    async def __call__(self) -> None:
        self.runs += 1
        if self.fails is not None:
            raise self.fails


async def test_the_check_runs_once_per_interval_not_on_every_call() -> None:
    clock, check = Clock(), Check()
    watch = SessionWatch(check, 2.0, clock=clock)
    for _ in range(5):
        assert await watch.ended() is None
    assert check.runs == 0  # just authenticated by the request itself
    clock.now += 2.0
    assert await watch.ended() is None and check.runs == 1
    clock.now += 1.9
    assert await watch.ended() is None and check.runs == 1
    clock.now += 0.1
    assert await watch.ended() is None and check.runs == 2


async def test_a_failed_authentication_ends_the_stream_as_session_ended() -> None:
    clock, check = Clock(), Check()
    watch = SessionWatch(check, 1.0, clock=clock)
    clock.now += 1.0
    assert await watch.ended() is None
    check.fails = AuthError("Invalid token")
    clock.now += 1.0
    assert await watch.ended() == "session_ended"


async def test_a_check_that_cannot_reach_the_database_ends_the_stream_too() -> None:
    clock, check = Clock(), Check()
    watch = SessionWatch(check, 1.0, clock=clock)
    check.fails = asyncpg.CannotConnectNowError("the database system is starting up")
    clock.now += 1.0
    assert await watch.ended() == "unavailable"
    check.fails = OSError("connection refused")
    clock.now += 1.0
    assert await watch.ended() == "unavailable"


def test_the_last_event_names_the_reason() -> None:
    assert ended_sse("session_ended") == {"event": "ended", "data": '{"reason": "session_ended"}'}
