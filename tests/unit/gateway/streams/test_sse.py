import json
from collections.abc import AsyncIterator
from uuid import uuid4

from gateway.routes.chat import to_sse
from gateway.streams.relay import StreamTimeout
from gateway.streams.sse import MAX_WRITE_BYTES, gather_writes
from shared.contracts.events import DoneReply, ErrorReply, Source, SourcesReply, TokenReply

ENVELOPE = {
    "correlation_id": "req-1",
    "stream_id": "stream-0001",
    "tenant_id": uuid4(),
    "user_id": uuid4(),
    "conversation_id": uuid4(),
    "seq": 3,
}


def test_token_event() -> None:
    sse = to_sse(TokenReply(**ENVELOPE, text="Hello "))
    assert sse["event"] == "token"
    assert json.loads(sse["data"]) == {"text": "Hello ", "seq": 3}


def test_sources_event_is_a_list() -> None:
    source = Source(
        n=1,
        document_id=uuid4(),
        filename="a.pdf",
        chunk_index=2,
        score=0.5,
        snippet="s",
        text="s t",
        page=3,
        section=None,
    )
    data = json.loads(to_sse(SourcesReply(**ENVELOPE, sources=[source]))["data"])
    assert data == [
        {
            "n": 1,
            "document_id": str(source.document_id),
            "filename": "a.pdf",
            "chunk_index": 2,
            "score": 0.5,
            "snippet": "s",
            "text": "s t",
            "page": 3,
            "section": None,
        }
    ]


def test_terminal_events() -> None:
    done = to_sse(DoneReply(**ENVELOPE, cited=[2, 1]))
    assert done["event"] == "done"
    assert json.loads(done["data"])["conversation_id"] == str(ENVELOPE["conversation_id"])
    assert json.loads(done["data"])["cited"] == [2, 1]
    error = to_sse(ErrorReply(**ENVELOPE, message="boom"))
    assert (error["event"], json.loads(error["data"])["message"]) == ("error", "boom")
    timeout = to_sse(StreamTimeout(2.5))
    assert timeout["event"] == "timeout"
    assert json.loads(timeout["data"])["stream_timeout"] == 2.5


async def _writes(
    messages: list[dict[str, str]], waiting: list[int], sep: str | None
) -> list[bytes]:
    """gather_writes over ``messages``, with ``waiting[i]`` messages said to be
    queued after the i-th is read."""
    read = 0

    async def source() -> AsyncIterator[dict[str, str]]:
        nonlocal read
        for message in messages:
            read += 1
            yield message

    return [w async for w in gather_writes(source(), lambda: waiting[read - 1], sep)]


async def test_a_burst_goes_out_in_one_write_and_nothing_waits() -> None:
    messages = [{"event": "token", "data": json.dumps({"seq": i})} for i in range(5)]
    # Three queued behind the first, then the queue runs dry after the fourth.
    writes = await _writes(messages, [3, 2, 1, 0, 0], None)
    assert len(writes) == 2
    events = b"".join(writes).decode().split("\r\n\r\n")[:-1]
    assert events[0] == 'event: token\r\ndata: {"seq": 0}'
    assert [json.loads(e.split("data: ")[1])["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert writes[0].decode().count("event: token") == 4


async def test_one_write_per_event_when_none_is_queued() -> None:
    messages = [{"data": "a"}, {"data": "[DONE]"}]
    writes = await _writes(messages, [0, 0], "\n")
    assert writes == [b"data: a\n\n", b"data: [DONE]\n\n"]


async def test_a_write_is_bounded() -> None:
    big = "x" * (MAX_WRITE_BYTES // 2)
    writes = await _writes([{"data": big}] * 5, [4, 3, 2, 1, 0], "\n")
    assert len(writes) == 3
    assert all(len(w) <= MAX_WRITE_BYTES + len(big) + 16 for w in writes)
