import uuid
from datetime import UTC, datetime, timedelta

from query.cancellation import Cancellations
from shared.contracts.events import ChatCancel, ChatRequest


def _request(tenant: uuid.UUID, user: uuid.UUID) -> ChatRequest:
    return ChatRequest(
        correlation_id="req-1",
        tenant_id=tenant,
        user_id=user,
        conversation_id=uuid.uuid4(),
        message="hi",
        deadline=datetime.now(UTC) + timedelta(seconds=30),
    )


def test_a_cancel_stops_only_the_stream_of_its_own_tenant_and_user() -> None:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    request = _request(tenant, user)
    cancellations = Cancellations()
    stranger = uuid.uuid4()
    forged = ChatCancel(
        correlation_id="x",
        stream_id=request.stream_id,
        tenant_id=stranger,
        user_id=stranger,
        reason="client_disconnected",
    )
    cancellations.cancel(forged)
    assert not cancellations.is_cancelled(request)
    cancellations.cancel(forged.model_copy(update={"tenant_id": tenant, "user_id": user}))
    assert cancellations.is_cancelled(request)


def test_stream_ids_are_chosen_per_request_not_from_the_correlation_id() -> None:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    first, second = _request(tenant, user), _request(tenant, user)
    assert first.correlation_id == second.correlation_id
    assert first.stream_id != second.stream_id
