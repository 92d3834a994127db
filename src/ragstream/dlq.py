"""``rag dlq list|replay``: look at dead letters, and send them back to the
topic they came from once whatever failed them is fixed.

A letter is replayed at most once across runs: ``replay`` commits, letter by
letter, the offset of consumer group ``<prefix>.dlq-replay`` on the
dead-letter topic, and starts after it. ``list`` shows the letters after that
offset (``--all``: every letter kept) and commits nothing. ``replay --reason``
re-appends the letters it skips to the end of the dead-letter topic, so
they stay pending for a later replay.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

# Letters read per fetch.
_FETCH_MS = 500


@dataclass(frozen=True)
class Letter:
    topic: str  # the dead-letter topic
    partition: int
    offset: int
    key: bytes | None
    letter: Any  # shared.contracts.events.DeadLetter, or None when unreadable
    raw: bytes

    def line(self) -> str:
        if self.letter is None:
            return f"{self.topic}@{self.offset}  unreadable letter ({len(self.raw)} bytes)"
        d = self.letter
        return (
            f"{self.topic}@{self.offset}  {d.failed_at:%Y-%m-%d %H:%M:%S}  {d.reason}"
            f"  from {d.source_topic}[{d.partition}]@{d.offset}  {d.detail[:160]}"
        )

    def as_json(self) -> dict[str, Any]:
        body = self.letter.model_dump(mode="json") if self.letter is not None else None
        return {"dlq_topic": self.topic, "dlq_offset": self.offset, "letter": body}


@dataclass(frozen=True)
class ListOptions:
    """``rag dlq list``: which letters, how many, and how shown."""

    topics: list[str] | None = None
    limit: int = 50
    as_json: bool = False
    every: bool = False  # replayed letters too


@dataclass(frozen=True)
class ReplayOptions:
    """``rag dlq replay``: which letters go back, and whether for real."""

    topics: list[str] | None = None
    reason: str | None = None
    dry_run: bool = False


def list_command(options: ListOptions) -> int:
    from shared.config import Settings

    return asyncio.run(_list(Settings(), options))


def replay_command(options: ReplayOptions) -> int:
    from shared.config import Settings

    return asyncio.run(_replay(Settings(), options))


def source_topics(prefix: str, wanted: list[str] | None) -> list[str]:
    """The request topics named by ``--topic`` (all of them by default)."""
    from shared.contracts.topics import Topics

    topics = Topics.from_prefix(prefix)
    known = {
        "ingest": topics.ingest_requests,
        "chat": topics.chat_requests,
        "search": topics.search_requests,
    }
    if not wanted:
        return list(known.values())
    chosen = []
    for name in wanted:
        name = name.removesuffix(".dlq")
        topic = known.get(name, name)
        if f"{prefix}.{name}" in known.values():
            topic = f"{prefix}.{name}"  # ingest.requests
        if topic not in known.values():
            raise SystemExit(f"rag: unknown topic {name!r}; one of: {', '.join(known.values())}")
        chosen.append(topic)
    return chosen


def _consumer(settings: Any) -> Any:
    from aiokafka import AIOKafkaConsumer

    from shared.runtime.kafka import kafka_security

    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **kafka_security(settings),
        group_id=f"{settings.kafka_topic_prefix}.dlq-replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _assign(consumer: Any, topics: list[str]) -> list[Any]:
    """Assign every partition of the dead-letter ``topics`` at once (missing
    topics: none). Once: each new assignment restarts the group
    coordinator's routine, and on a Kafka whose group coordinator is still
    being set up an assignment replaced mid-way fails an assertion inside
    aiokafka."""
    from aiokafka import TopicPartition

    tps = [TopicPartition(t, p) for t in topics for p in await _partitions(consumer, t)]
    if tps:
        consumer.assign(tps)
    return tps


async def _letters(consumer: Any, tps: list[Any], *, from_start: bool) -> AsyncIterator[Letter]:
    """The letters of the assigned partitions ``tps`` after the group's
    committed offset (or all), up to their end when the read began."""
    from shared.contracts.events import DeadLetter

    if not tps:
        return
    ends = await consumer.end_offsets(tps)
    starts = await consumer.beginning_offsets(tps)
    for tp in tps:
        committed = None if from_start else await consumer.committed(tp)
        position = max(committed or 0, starts[tp])
        consumer.seek(tp, position)
        while position < ends[tp]:
            batch = await consumer.getmany(tp, timeout_ms=_FETCH_MS)
            for record in batch.get(tp, []):
                if record.offset >= ends[tp]:
                    position = ends[tp]  # written after the read began
                    break
                position = record.offset + 1
                try:
                    letter: DeadLetter | None = DeadLetter.model_validate_json(record.value)
                except ValidationError:
                    letter = None
                yield Letter(
                    tp.topic, tp.partition, record.offset, record.key, letter, record.value
                )


async def _partitions(consumer: Any, topic: str) -> list[int]:
    from shared.runtime.follow import known_partitions

    try:
        return await known_partitions(consumer, topic, tries=1)  # a missing topic: none
    except LookupError:
        return []


async def _list(settings: Any, args: ListOptions) -> int:
    from shared.contracts.topics import Topics

    shown: list[Letter] = []
    consumer = _consumer(settings)
    await consumer.start()
    try:
        dead = [
            Topics.dead_letter(s) for s in source_topics(settings.kafka_topic_prefix, args.topics)
        ]
        async for letter in _letters(
            consumer, await _assign(consumer, dead), from_start=args.every
        ):
            if len(shown) >= args.limit:
                break
            shown.append(letter)
    finally:
        await consumer.stop()
    if args.as_json:
        print(json.dumps([letter.as_json() for letter in shown], indent=2))
    else:
        for letter in shown:
            print(letter.line())
        print(f"{len(shown)} letters" + (" (limit reached)" if len(shown) >= args.limit else ""))
    return 0


@dataclass
class _Tally:
    replayed: int = 0
    skipped: int = 0
    unusable: int = 0


async def _replay(settings: Any, args: ReplayOptions) -> int:
    from shared.contracts.topics import Topics
    from shared.runtime.kafka import create_broker

    sources = source_topics(settings.kafka_topic_prefix, args.topics)
    tally = _Tally()
    consumer = _consumer(settings)
    broker = create_broker(settings, client_id="rag-dlq-replay")
    await consumer.start()
    await broker.start()
    try:
        tps = await _assign(consumer, [Topics.dead_letter(s) for s in sources])
        async for letter in _letters(consumer, tps, from_start=False):
            await _replay_one(consumer, broker, letter, args, sources, tally)
    finally:
        await broker.stop()
        await consumer.stop()
    verb = "would replay" if args.dry_run else "replayed"
    print(
        f"{verb} {tally.replayed} letters; {tally.skipped} left pending; {tally.unusable} unusable"
    )
    return 0


async def _replay_one(
    consumer: Any,
    broker: Any,
    letter: Letter,
    args: ReplayOptions,
    sources: list[str],
    tally: _Tally,
) -> None:
    """Republish one letter's payload (or, when ``--reason`` passes it over,
    the letter itself to the end of its topic), then commit past it: a crash
    in between replays it once more, which idempotent consumers absorb."""
    from aiokafka import TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    from shared.runtime.kafka import republish

    d = letter.letter
    if d is None or d.source_topic not in sources:
        tally.unusable += 1  # unreadable, or from a topic this deployment does not own
        target, value = None, b""
    elif args.reason and d.reason != args.reason:
        tally.skipped += 1
        target, value = letter.topic, letter.raw
    else:
        tally.replayed += 1
        target, value = d.source_topic, d.payload.encode()
        print(("would replay " if args.dry_run else "replayed ") + letter.line())
    if args.dry_run:
        return
    if target is not None:
        await republish(broker, target, value, key=letter.key)
    tp = TopicPartition(letter.topic, letter.partition)
    await consumer.commit({tp: OffsetAndMetadata(letter.offset + 1, "")})
