"""The conversation list's cursor: what a page gives back is where the next
one starts; anything else is refused with a reason, never a 500."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from shared.errors import InvalidInput
from shared.storage.conversations import Conversation, cursor_after, parse_cursor


def test_a_cursor_names_the_last_conversation_of_its_page() -> None:
    at = datetime(2026, 12, 6, 18, 0, 0, 123456, tzinfo=UTC)
    conversation = Conversation(uuid.uuid4(), "t", 2, at, at)
    assert parse_cursor(cursor_after(conversation)) == (at, conversation.id)


@pytest.mark.parametrize(
    "cursor",
    [
        "nope",
        "",
        "%%%",
        base64.urlsafe_b64encode(b"2026-12-06T18:00:00|not-a-uuid").decode(),
        base64.urlsafe_b64encode(f"2026-12-06T18:00:00|{uuid.uuid4()}".encode()).decode(),
        base64.urlsafe_b64encode(f"yesterday|{uuid.uuid4()}".encode()).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_else_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        parse_cursor(cursor)
