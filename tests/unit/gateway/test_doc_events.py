"""The fan-out's pure parts: who may see a document, and a slow client's
bounded queue (the end-to-end behaviour is tests/e2e/test_document_events.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from gateway.doc_events import StatusEvent, Subscription, may_read
from shared.storage.documents import Document, Visibility
from tests.support.rows import document_row

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _doc(tenant: uuid.UUID, owner: uuid.UUID, visibility: Visibility) -> Document:
    return document_row(tenant, owner, chunks=3, visibility=visibility)


def test_owner_and_tenant_when_shared_never_another_tenant() -> None:
    tenant, owner, mate, stranger = (uuid.uuid4() for _ in range(4))
    private, shared = _doc(tenant, owner, "private"), _doc(tenant, owner, "tenant")
    none: set[uuid.UUID] = set()
    assert may_read(tenant, owner, private, none) and may_read(tenant, owner, shared, none)
    assert not may_read(tenant, mate, private, none) and may_read(tenant, mate, shared, none)
    # Another tenant, even with the owner's user id, sees neither.
    assert not may_read(stranger, owner, private, none)
    assert not may_read(stranger, mate, shared, none)


def test_a_group_document_reaches_its_groups_members_only() -> None:
    tenant, owner, member, mate, stranger = (uuid.uuid4() for _ in range(5))
    grouped = _doc(tenant, owner, "groups")
    members = {member}
    assert may_read(tenant, owner, grouped, set())  # the owner, in no group
    assert may_read(tenant, member, grouped, members)
    assert not may_read(tenant, mate, grouped, members)
    # Membership counts only for a document shared with groups...
    assert not may_read(tenant, member, _doc(tenant, owner, "private"), members)
    # ...and never across tenants, whatever the member set says.
    assert not may_read(stranger, member, grouped, members)


def _event(at: datetime, doc_id: uuid.UUID | None = None) -> StatusEvent:
    return StatusEvent(doc_id or uuid.uuid4(), "a.txt", "processing", None, None, at)


async def test_a_client_that_falls_behind_is_dropped_and_its_stream_ends() -> None:
    queue: asyncio.Queue[StatusEvent | None] = asyncio.Queue(3 + 1)
    subscription = Subscription(uuid.uuid4(), uuid.uuid4(), queue)
    for n in range(5):
        subscription.offer(_event(NOW + timedelta(seconds=n)))
    assert subscription.dropped
    taken = [queue.get_nowait() for _ in range(queue.qsize())]
    # What fitted, then the end marker in the slot kept for it; nothing after.
    assert [e is None for e in taken] == [False, False, False, True]


def test_a_change_older_than_what_the_client_saw_is_skipped() -> None:
    subscription = Subscription(uuid.uuid4(), uuid.uuid4(), asyncio.Queue(2))
    doc_id = uuid.uuid4()
    assert subscription.fresh(_event(NOW, doc_id))
    assert not subscription.fresh(_event(NOW - timedelta(seconds=1), doc_id))
    assert subscription.fresh(_event(NOW + timedelta(seconds=1), doc_id))


def test_the_payload_is_the_clients_contract() -> None:
    event = StatusEvent(uuid.uuid4(), "a.txt", "failed", "no text", None, NOW)
    assert event.payload() == {
        "document_id": str(event.document_id),
        "filename": "a.txt",
        "status": "failed",
        "error": "no text",
        "chunks": None,
        "at": "2026-01-01T00:00:00+00:00",
    }
