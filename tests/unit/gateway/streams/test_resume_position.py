"""Last-Event-ID, as a resume reads it."""

from __future__ import annotations

import pytest

from gateway.streams.resume import Position
from shared.errors import InvalidInput


def test_ids_name_a_reply_a_reset_before_one_or_the_start() -> None:
    assert Position.parse("1234") == Position(1234, reset=False)
    assert Position.parse("1234r") == Position(1234, reset=True)
    assert Position.parse("start") == Position.parse(None) == Position(None)


@pytest.mark.parametrize("bad", ["", "-1", "12x", "r12", "1" * 19, "12 "])
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        Position.parse(bad)
