"""Event models refuse text that could not be stored or sent: a message with
NUL or an unpaired surrogate is a validation error where it comes in (a 422
at the gateway, a dead letter on Kafka), not a failure in a worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.contracts.events import ChatRequest, Turn


def _request(message: str, history: list[Turn] | None = None) -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message=message,
        deadline=datetime.now(UTC) + timedelta(seconds=30),
        history=history,
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [("a\x00b", "NUL"), ("half \udbe3 a pair", "unicode")],
)
def test_unstorable_text_is_refused_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        _request(text)
    with pytest.raises(ValidationError, match=reason):
        _request("fine", history=[Turn(role="user", content=text)])


def test_text_from_the_wire_keeps_its_characters() -> None:
    wire = _request("placeholder").model_dump_json().replace("placeholder", "\\ud879\\udfea ok")
    assert ChatRequest.model_validate_json(wire).message == "\U0002e7ea ok"
