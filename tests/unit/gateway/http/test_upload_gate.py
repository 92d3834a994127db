import uuid

import pytest

from gateway.http.upload_gate import SpoolFull, UploadGate
from shared.errors import TooManyRequests


def test_a_user_holds_at_most_max_slots_and_gets_them_back() -> None:
    gate, user, other = UploadGate(max_per_user=2, spool_bytes=100), uuid.uuid4(), uuid.uuid4()
    gate.enter(user)
    gate.enter(user)
    with pytest.raises(TooManyRequests) as refused:
        gate.enter(user)
    assert refused.value.retry_after == 5
    gate.enter(other)
    gate.leave(user)
    gate.enter(user)


def test_the_spool_budget_is_reserved_and_released() -> None:
    gate = UploadGate(max_per_user=1, spool_bytes=100)
    gate.reserve(60)
    with pytest.raises(SpoolFull):
        gate.reserve(41)
    gate.reserve(40)
    assert gate.spooled == 100
    gate.release(60)
    gate.reserve(50)
    gate.release(1000)
    assert gate.spooled == 0
