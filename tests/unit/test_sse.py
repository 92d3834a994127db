import json
from uuid import uuid4

from gateway.relay import StreamTimeout
from gateway.routes.chat import to_sse
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
        n=1, document_id=uuid4(), filename="a.pdf", chunk_index=2, score=0.5, snippet="s",
        text="s t", page=3, section=None,
    )  # fmt: skip
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
