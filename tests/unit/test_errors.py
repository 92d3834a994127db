import pytest
from pydantic import BaseModel, ValidationError

from gateway.errors import status_for
from shared.consumer import dead_letter_reason
from shared.errors import (
    AuthError,
    Conflict,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RagError,
    Unavailable,
    UnsupportedDocument,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (UnsupportedDocument("x"), 415),
        (NotFound("x"), 404),
        (AuthError("x"), 401),
        (Conflict("x"), 409),
        (PayloadTooLarge("x"), 413),
        (Unavailable("x"), 503),
        (DeadlineExceeded("x"), 504),
        (RagError("x"), 500),
    ],
)
def test_each_error_kind_has_one_http_status(error: RagError, status: int) -> None:
    assert status_for(error) == status


class _Model(BaseModel):
    count: int


def test_dead_letter_reasons() -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate_json('{"count": "many"}')
    reason, detail = dead_letter_reason(caught.value)
    assert reason == "invalid_message"
    assert "count" in detail
    assert dead_letter_reason(UnsupportedDocument("bad pdf")) == ("unsupported_document", "bad pdf")
    assert dead_letter_reason(KeyError("k"))[0] == "unhandled_error"
