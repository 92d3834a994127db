"""A stream's inbox: one answer attempt, in order, each event once, bounded."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.streams.inbox import AnyReplyEvent, AttemptReset, Inbox, StreamCut
from shared.contracts.events import DoneReply, SourcesReply, TokenReply

TENANT, USER = uuid.uuid4(), uuid.uuid4()
IDS = {
    "correlation_id": "c",
    "stream_id": "stream-0001",
    "tenant_id": TENANT,
    "user_id": USER,
    "conversation_id": uuid.uuid4(),
}


def token(seq: int, text: str = "x", attempt: str | None = "attempt-a") -> TokenReply:
    return TokenReply(**IDS, seq=seq, text=text, attempt_id=attempt)


def inbox(size: int = 16) -> Inbox:
    return Inbox(TENANT, USER, size)


async def drained(box: Inbox) -> list[AnyReplyEvent | AttemptReset]:
    got: list[AnyReplyEvent | AttemptReset] = []
    while not box.empty():
        got.append(await box.get())
    return got


async def test_events_already_relayed_or_late_are_dropped() -> None:
    box = inbox()
    outcomes = [box.deliver(token(s)) for s in (0, 1, 1, 3, 2, 0, 4)]
    assert outcomes == [None, None, "duplicate", None, "out_of_order", "duplicate", None]
    assert [r.seq for r in await drained(box)] == [0, 1, 3, 4]


async def test_a_second_answer_attempt_is_dropped_whole_never_spliced() -> None:
    box = inbox()
    first = [SourcesReply(**IDS, seq=0, sources=[], attempt_id="attempt-a"), token(1, "Lima ")]
    second = [
        SourcesReply(**IDS, seq=0, sources=[], attempt_id="attempt-b"),
        token(1, "Lima ", "attempt-b"),
        token(2, "is ", "attempt-b"),
        DoneReply(**IDS, seq=3, attempt_id="attempt-b"),
    ]
    assert [box.deliver(r) for r in first] == [None, None]
    assert [box.deliver(r) for r in second] == ["other_attempt"] * 4
    assert box.deliver(token(2, "is Peru's capital")) is None
    assert box.attempt_id == "attempt-a"
    text = "".join(r.text for r in await drained(box) if isinstance(r, TokenReply))
    assert text == "Lima is Peru's capital"


async def test_replies_of_a_worker_without_attempt_ids_still_flow() -> None:
    box = inbox()
    assert [box.deliver(token(s, attempt=None)) for s in (0, 1)] == [None, None]


async def test_a_full_inbox_cuts_the_stream_and_drops_the_rest() -> None:
    box = inbox(size=8)
    assert all(box.deliver(token(s)) is None for s in range(8))
    assert box.deliver(token(8)) == "overflow"
    assert box.deliver(token(9)) == "after_cut"
    with pytest.raises(StreamCut) as cut:
        await box.get()
    assert cut.value.reason == "overflow"


async def test_a_cut_wakes_a_reader_waiting_on_an_empty_inbox() -> None:
    box = inbox()
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0.01)
    box.cut("shutdown")
    with pytest.raises(StreamCut) as cut:
        await asyncio.wait_for(reader, 1)
    assert cut.value.reason == "shutdown"


def seen(events: list[AnyReplyEvent | AttemptReset]) -> list[tuple[str, int, str | None]]:
    """(type, seq or attempt number, attempt id) of each event."""
    return [
        ("reset", e.attempt, None) if isinstance(e, AttemptReset) else (e.type, e.seq, e.attempt_id)
        for e in events
    ]


async def test_after_its_worker_died_the_next_attempt_is_relayed_after_one_reset() -> None:
    box = inbox()
    assert [box.deliver(token(s, attempt="attempt-a")) for s in (0, 1)] == [None, None]
    assert seen(await drained(box)) == [("token", 0, "attempt-a"), ("token", 1, "attempt-a")]
    assert box.reopen() == 2
    # The dead attempt's stragglers are dropped; the new one starts at 0.
    assert box.deliver(token(2, attempt="attempt-a")) == "other_attempt"
    assert [box.deliver(token(s, attempt="attempt-b")) for s in (0, 1)] == [None, None]
    assert box.deliver(token(3, attempt="attempt-a")) == "other_attempt"
    assert seen(await drained(box)) == [
        ("reset", 2, None),
        ("token", 0, "attempt-b"),
        ("token", 1, "attempt-b"),
    ]
    assert box.attempts == 2


async def test_nothing_relayed_yet_means_no_reset() -> None:
    box = inbox()
    box.reopen()
    assert box.deliver(token(0, attempt="attempt-b")) is None
    assert seen(await drained(box)) == [("token", 0, "attempt-b")]


async def test_each_event_read_has_its_record_offset_as_id_and_a_reset_the_next_one() -> None:
    box = inbox()
    box.deliver(token(0), 40)
    box.deliver(token(1), 41)
    box.reopen()  # the worker died: the next attempt is relayed after a reset
    box.deliver(token(0, attempt="attempt-b"), 57)
    ids = []
    while not box.empty():
        await box.get()
        ids.append(box.last_id)
    assert ids == ["40", "41", "57r", "57"]


async def test_a_resumed_inbox_goes_on_after_the_event_the_client_saw() -> None:
    box = inbox()
    box.resume_at("attempt-a", 2)
    outcomes = [box.deliver(token(s), 100 + s) for s in (1, 2, 3)]
    outcomes.append(box.deliver(token(4, attempt="attempt-b"), 104))
    assert outcomes == ["duplicate", "duplicate", None, "other_attempt"]
    assert [(r.seq, box.last_id) for r in [await box.get()]] == [(3, "103")]


async def test_a_resume_onto_a_new_attempt_resets_first() -> None:
    box = inbox()
    box.resume_at("attempt-b", -1, reset=True)
    assert box.deliver(token(0, attempt="attempt-a"), 10) == "other_attempt"
    assert box.deliver(token(0, attempt="attempt-b"), 12) is None
    got = await drained(box)
    assert isinstance(got[0], AttemptReset)
    assert [r.seq for r in got[1:] if not isinstance(r, AttemptReset)] == [0]
    assert len(got) == 2
