import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from gateway import errors
from gateway.errors import status_for
from shared.errors import (
    AuthError,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RagError,
    TooManyRequests,
    Unavailable,
    UnsupportedDocument,
)
from shared.runtime.consumer import dead_letter_reason


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (UnsupportedDocument("x"), 415),
        (NotFound("x"), 404),
        (AuthError("x"), 401),
        (Conflict("x"), 409),
        (Forbidden("x"), 403),
        (TooManyRequests("x", retry_after=3), 429),
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
    # An unexpected exception is named, never quoted: its text may come from the file.
    assert dead_letter_reason(KeyError("secret text")) == (
        "unexpected_error",
        "unexpected_error: KeyError",
    )


def _app_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_a_rate_limit_says_when_to_come_back() -> None:
    response = _app_raising(TooManyRequests("slow down", retry_after=7)).get("/boom")
    assert (response.status_code, response.headers["retry-after"]) == (429, "7")
    assert response.json() == {"detail": "slow down"}


@pytest.mark.parametrize("exc", [Unavailable("the document could not be stored"), OSError("down")])
def test_a_503_says_when_to_retry(exc: Exception) -> None:
    response = _app_raising(exc).get("/boom")
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")


def test_other_errors_say_nothing_of_retrying() -> None:
    for exc in (InvalidInput("x"), NotFound("x"), RagError("x")):
        assert "retry-after" not in _app_raising(exc).get("/boom").headers


def test_an_unexpected_error_keeps_the_security_headers() -> None:
    # Starlette answers these outside every middleware.
    response = _app_raising(RuntimeError("bug")).get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
