"""``rag login`` and ``rag logout``."""

from __future__ import annotations

import time
from collections.abc import Callable

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


def login_sso(url: str, tell: Callable[[str], None]) -> Login:
    """``rag login --sso``: the device-code flow through the gateway. The
    user opens the address ``tell`` shows, enters the code there (or finds
    it filled in) and signs in at the organisation's provider; meanwhile
    this polls the gateway, at the interval the provider asks for."""
    started = _post(url, "/api/auth/oidc/device", None)
    if started.status_code == 404:
        raise ClientError(f"{url} offers no single sign-on: {reason(started)}")
    if started.status_code != 200:
        raise ClientError(f"single sign-on could not start: {reason(started)}")
    device = started.json()
    address = device.get("verification_uri_complete") or device["verification_uri"]
    tell(f"Open {address} and sign in; the code is {device['user_code']}")
    interval = float(device.get("interval") or 5)
    deadline = time.monotonic() + float(device["expires_in"])
    body = {"device_code": device["device_code"]}
    while time.monotonic() < deadline:
        time.sleep(interval)
        polled = _post(url, "/api/auth/oidc/device/token", body)
        if polled.status_code == 409:  # not approved yet
            continue
        if polled.status_code == 429:  # the provider asks for slower polling
            interval += 5
            continue
        if polled.status_code != 200:
            raise ClientError(f"single sign-on refused: {reason(polled)}")
        return _signed_in(url, polled.json())
    raise ClientError("single sign-on expired before it was approved: run `rag login --sso` again")


def _post(url: str, path: str, body: dict[str, str] | None) -> httpx.Response:
    try:
        return httpx.post(f"{url}{path}", json=body, timeout=TIMEOUT)
    except httpx.TransportError as exc:
        raise unreachable(url, exc) from exc


def _signed_in(url: str, tokens: dict[str, str]) -> Login:
    """The session kept, named after the user the gateway says it is."""
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    try:
        me = httpx.get(f"{url}/api/auth/verify", headers=headers, timeout=TIMEOUT)
    except httpx.TransportError as exc:
        raise unreachable(url, exc) from exc
    username = str(me.json()["username"]) if me.status_code == 200 else ""
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
