import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from gateway.http import errors
from gateway.http.errors import status_for
from shared import errors as shared_errors
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


_TREE_ENTRY = re.compile(r"^    (?P<branch>[│├└─ ]*)(?P<name>[A-Z]\w*)")


def _docstring_tree() -> dict[str, str | None]:
    """Each class the tree in shared.errors' docstring names, with the class it
    hangs under (``None`` at the root)."""
    parents: dict[str, str | None] = {}
    path: list[str] = []  # from the root down to the entry before
    for line in (shared_errors.__doc__ or "").splitlines():
        entry = _TREE_ENTRY.match(line)
        if entry is None:
            continue
        depth = len(entry["branch"]) // 4  # "├── " and "│   " are one level each
        del path[depth:]
        parents[entry["name"]] = path[-1] if path else None
        path.append(entry["name"])
    return parents


def test_the_docstring_tree_names_every_error_under_its_parent() -> None:
    defined = {
        cls.__name__: cls
        for cls in vars(shared_errors).values()
        if isinstance(cls, type)
        and issubclass(cls, RagError)
        and cls.__module__ == shared_errors.__name__
    }
    tree = _docstring_tree()
    assert sorted(tree) == sorted(defined)
    for name, cls in defined.items():
        parent = None if cls is RagError else cls.__base__.__name__
        assert tree[name] == parent, name
