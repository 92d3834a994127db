"""``rag login`` and ``rag logout``."""

from __future__ import annotations

import time

import httpx

from ragstream.client import credentials
from ragstream.client.credentials import Login
from ragstream.client.errors import ClientError, reason, unreachable
from ragstream.client.session import TIMEOUT


def login(url: str, username: str, password: str) -> Login:
    body = {"username": username, "password": password}
    try:
        response = httpx.post(f"{url}/api/auth/login", json=body, timeout=TIMEOUT)
    except httpx.TransportError as exc:
        raise unreachable(url, exc) from exc
    if response.status_code != 200:
        raise ClientError(f"login refused: {reason(response)}")
    tokens = response.json()
    signed_in = Login(url, username, "", "", time.time()).renewed(tokens)
    credentials.save(signed_in)
    return signed_in


def logout() -> str:
    """Revokes the session on the server (best effort: the local copy goes
    anyway, so an unreachable server cannot keep someone signed in here)."""
    stored = credentials.load()
    if stored is None:
        return "not logged in"
    credentials.forget()
    body = {"refresh_token": stored.refresh_token}
    try:
        response = httpx.post(f"{stored.url}/api/auth/logout", json=body, timeout=TIMEOUT)
    except httpx.TransportError:
        return f"logged out locally ({stored.url} unreachable: the session was not revoked)"
    if response.status_code not in (204, 401):
        return f"logged out locally (revoking the session failed: {reason(response)})"
    return f"logged out of {stored.url}"
