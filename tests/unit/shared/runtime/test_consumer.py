"""The consumer's decisions, one message at a time: what is retried, how
long it waits, what is dead-lettered, and that a retry redoes only the step
that failed. (The same paths against a real Kafka: tests/faults.)"""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY
from pydantic import BaseModel, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from ingest.metrics import INGEST_DURATION
from ingest.pipeline import TooManyAttempts
from shared.contracts.events import IngestRequest
from shared.errors import InvalidInput, NotFound, Unavailable, UnsupportedDocument
from shared.runtime.consumer import MAX_MESSAGE_BYTES, Consumer, backoff_delay, is_transient

TOPIC = "unit.ingest.requests"


class _Model(BaseModel):
    count: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"count": "many"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "exc",
    [
        Unavailable("chroma is down"),
        ConnectionRefusedError(111, "refused"),
        OSError("network unreachable"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("starting up"),
        asyncpg.InterfaceError("connection is closed"),
        RedisConnectionError("redis down"),
        KafkaConnectionError(),
        httpx.ConnectError("chroma refused"),
        asyncpg.AdminShutdownError("the server is shutting down"),
    ],
)
def test_what_may_pass_later_is_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        InvalidInput("bad"),
        UnsupportedDocument("not a pdf"),
        NotFound("gone"),
        TooManyAttempts("poison"),
        _validation_error(),
        # Unexpected: a bug, or content a library chokes on. Judged by cause,
        # these are not a dependency being away.
        KeyError("k"),
        RecursionError("maximum recursion depth exceeded"),
        UnicodeEncodeError("utf-8", "\ud83d", 0, 1, "surrogates not allowed"),
        asyncpg.CharacterNotInRepertoireError("invalid byte sequence: 0x00"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    ],
)
def test_only_a_dependency_being_unavailable_is_transient(exc: Exception) -> None:
    assert not is_transient(exc)


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff_delay(n, 0.5, 30) for n in range(10)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert backoff_delay(10_000, 0.5, 30) == 30  # no overflow after a long outage


class _Broker:
    """Records what is published, or fails while ``down``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.down = False

    async def publish(self, body: bytes, topic: str, **_: Any) -> None:
        if self.down:
            raise KafkaConnectionError()
        self.sent.append((topic, json.loads(body)))


class _Script:
    """A handler that raises the scripted errors in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.claims = 0
        self.gave_up: list[tuple[str, str]] = []
        self.give_up_errors: list[Exception] = []

    async def claim(self, _event: IngestRequest) -> None:
        self.claims += 1

    async def handle(self, _event: IngestRequest) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "indexed"

    async def give_up(self, _event: IngestRequest, reason: str, detail: str) -> None:
        if self.give_up_errors:
            raise self.give_up_errors.pop(0)
        self.gave_up.append((reason, detail))


def _consumer(broker: _Broker, script: _Script, *, retry: bool = True) -> Consumer[IngestRequest]:
    return Consumer(
        broker=cast(KafkaBroker, broker),
        topic=TOPIC,
        group_id="unit.ingest",
        model=IngestRequest,
        handle=script.handle,
        on_delivery=script.claim,
        on_give_up=script.give_up,
        retry_transient=retry,
        max_attempts=3,
        backoff_seconds=0.001,
        retry_max_seconds=0.004,
        duration=INGEST_DURATION,
    )


def _record(body: bytes, offset: int = 7) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, b"key", body, None, 3, len(body), ())


def _request() -> bytes:
    request = IngestRequest(
        correlation_id="unit-test",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        filename="a.txt",
        blob_key="t/d",
        size_bytes=1,
        sha256="0" * 64,
    )
    return request.model_dump_json().encode()


async def _deliver_until_done(consumer: Consumer[IngestRequest], record: Any) -> int:
    """Hand the record over as FastStream would after each nack; the nacks."""
    for nacks in range(50):
        try:
            await consumer(record.value, record)
            return nacks
        except NackMessage:
            continue
    raise AssertionError("never settled")


async def test_transient_failures_are_retried_without_a_new_claim() -> None:
    broker, script = _Broker(), _Script(Unavailable("pg down"), ConnectionResetError())
    nacks = await _deliver_until_done(_consumer(broker, script), _record(_request()))
    assert (nacks, script.calls, script.claims) == (2, 3, 1)
    assert broker.sent == [] and script.gave_up == []


async def test_an_unexpected_error_is_tried_max_attempts_times_then_dead_lettered() -> None:
    # A poison document: the same bug on every try. It must not hold its
    # partition for ever (the old rule retried anything not ours).
    poison = UnicodeEncodeError("utf-8", "\ud83d from the file", 0, 1, "surrogates not allowed")
    broker, script = _Broker(), _Script(*[poison] * 10)
    nacks = await _deliver_until_done(_consumer(broker, script), _record(_request()))
    assert (nacks, script.calls, script.claims) == (2, 3, 1)
    [(topic, letter)] = broker.sent
    assert topic == f"{TOPIC}.dlq"
    # Named by its class: the message may quote the file.
    assert (letter["reason"], letter["detail"]) == (
        "unexpected_error",
        "unexpected_error: UnicodeEncodeError",
    )
    assert script.gave_up == [("unexpected_error", "unexpected_error: UnicodeEncodeError")]


async def test_an_unexpected_error_that_passes_on_a_retry_costs_a_retry() -> None:
    broker, script = _Broker(), _Script(KeyError("a fluke"))
    nacks = await _deliver_until_done(_consumer(broker, script), _record(_request()))
    assert (nacks, script.calls, broker.sent, script.gave_up) == (1, 2, [], [])


async def test_transient_errors_do_not_use_up_the_attempts() -> None:
    # Three unexpected failures would give up; the outage between them does not count.
    errors = [KeyError("1"), Unavailable("down"), Unavailable("down"), KeyError("2")]
    broker, script = _Broker(), _Script(*errors)
    nacks = await _deliver_until_done(_consumer(broker, script), _record(_request()))
    assert (nacks, script.calls, broker.sent) == (4, 5, [])


async def test_a_new_offset_is_a_new_delivery() -> None:
    broker, script = _Broker(), _Script()
    consumer = _consumer(broker, script)
    await _deliver_until_done(consumer, _record(_request(), offset=1))
    await _deliver_until_done(consumer, _record(_request(), offset=2))
    assert script.claims == 2


async def test_permanent_failure_is_dead_lettered_once_even_if_recording_it_fails() -> None:
    broker, script = _Broker(), _Script(UnsupportedDocument("'a.txt': binary content"))
    script.give_up_errors = [Unavailable("pg down while marking failed")]
    nacks = await _deliver_until_done(_consumer(broker, script), _record(_request()))
    # The status write failed once: retried, without a second letter or a
    # second run of the handler.
    assert (nacks, script.calls) == (1, 1)
    [(topic, letter)] = broker.sent
    assert topic == f"{TOPIC}.dlq"
    assert (letter["reason"], letter["offset"]) == ("unsupported_document", 7)
    assert script.gave_up == [("unsupported_document", "'a.txt': binary content")]


async def test_a_failing_dead_letter_publish_is_retried_not_committed() -> None:
    broker, script = _Broker(), _Script(InvalidInput("bad"))
    broker.down = True
    consumer = _consumer(broker, script)
    record = _record(_request())
    for _ in range(3):
        with pytest.raises(NackMessage):
            await consumer(record.value, record)
    broker.down = False
    await _deliver_until_done(consumer, record)
    assert [letter["reason"] for _, letter in broker.sent] == ["invalid_input"]
    assert script.calls == 1 and script.gave_up == [("invalid_input", "bad")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid_message"),
        (b'{"oops": 1}', "invalid_message"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "message_too_large"),
    ],
)
async def test_unreadable_messages_are_dead_lettered(body: bytes, reason: str) -> None:
    broker, script = _Broker(), _Script()
    assert await _deliver_until_done(_consumer(broker, script), _record(body)) == 0
    [(_, letter)] = broker.sent
    assert letter["reason"] == reason
    assert script.calls == 0 and script.gave_up == []  # no event to mark failed


async def test_a_stopping_worker_gives_the_message_back_at_once() -> None:
    broker, script = _Broker(), _Script()
    consumer = _consumer(broker, script)
    consumer._running = lambda: False
    record = _record(_request())
    with pytest.raises(NackMessage):
        await consumer(record.value, record)
    assert script.calls == 0 and broker.sent == []


async def test_without_retries_a_failure_is_dead_lettered_at_once() -> None:
    # The query worker's mode: at most once, nothing is nacked.
    broker, script = _Broker(), _Script(Unavailable("pg down"))
    record = _record(_request())
    await _consumer(broker, script, retry=False)(record.value, record)
    [(_, letter)] = broker.sent
    assert letter["reason"] == "unavailable"
    assert script.gave_up == [("unavailable", "pg down")]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_outcomes_retries_and_dead_letters_are_counted() -> None:
    before = (
        _sample("rag_ingest_duration_seconds_count", outcome="indexed"),
        _sample("rag_ingest_duration_seconds_count", outcome="failed"),
        _sample("rag_ingest_retries_total", topic=TOPIC, error="Unavailable"),
        _sample("rag_dead_letters_total", topic=TOPIC, reason="invalid_input"),
    )
    broker = _Broker()
    await _deliver_until_done(_consumer(broker, _Script(Unavailable("down"))), _record(_request()))
    await _deliver_until_done(_consumer(broker, _Script(InvalidInput("bad"))), _record(_request()))
    after = (
        _sample("rag_ingest_duration_seconds_count", outcome="indexed"),
        _sample("rag_ingest_duration_seconds_count", outcome="failed"),
        _sample("rag_ingest_retries_total", topic=TOPIC, error="Unavailable"),
        _sample("rag_dead_letters_total", topic=TOPIC, reason="invalid_input"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]
