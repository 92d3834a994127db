"""What a client command reports in one line instead of a traceback."""

from __future__ import annotations

from typing import Any

import httpx

from ragstream.errors import CliError


class ClientError(CliError):
    """An expected failure of a client command: one line, exit code 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message, exit_code)


def reason(response: httpx.Response) -> str:
    """The gateway's ``detail`` (or the body's first line) with the status."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        detail = detail[0].get("msg")
    if not isinstance(detail, str) or not detail:
        detail = next(iter(response.text.strip().splitlines()), response.reason_phrase)
    return f"{response.status_code} {detail[:300]}"


def unreachable(url: str, exc: httpx.TransportError) -> ClientError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return ClientError(
        f"cannot reach {url} ({kind}): is the gateway running? Pass --url or set RAG_URL"
    )
