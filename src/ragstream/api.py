"""Talking to a running gateway from the ``rag`` command (samples, eval)."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """The gateway answered with a status the caller did not expect."""


def expect(response: httpx.Response, *codes: int) -> Any:
    """The response's JSON (``None`` when empty) if its status is one of ``codes``."""
    if response.status_code not in codes:
        raise ApiError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response.json() if response.content else None
