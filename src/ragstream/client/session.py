"""An HTTP session as the signed-in user: the access token is renewed with
the refresh token when it is about to expire or is refused (401), and the
new pair is stored at once (the old refresh token is used up)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ragstream.client import credentials
from ragstream.client.credentials import Login
from ragstream.client.errors import ClientError, reason, unreachable

# Reads may wait for a long answer; the gateway pings streams every 15 s.
TIMEOUT = httpx.Timeout(30.0, read=120.0)


def open_login(url_flag: str | None) -> Login:
    login = credentials.load()
    if login is None:
        raise ClientError("not logged in: run `rag login` first")
    if url_flag and url_flag.rstrip("/") != login.url:
        raise ClientError(f"logged in to {login.url}, not {url_flag}: run `rag login --url`")
    return login


class Session:
    def __init__(self, login: Login) -> None:
        self.login = login
        self.http = httpx.Client(base_url=login.url, timeout=TIMEOUT)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def _headers(self) -> dict[str, str]:
        if self.login.expired():
            self._refresh()
        return {"Authorization": f"Bearer {self.login.access_token}"}

    def _refresh(self) -> None:
        body = {"refresh_token": self.login.refresh_token}
        response = self._send(lambda: self.http.post("/api/auth/refresh", json=body))
        if response.status_code == 401:
            credentials.forget()
            raise ClientError("the session has expired or was revoked: run `rag login`")
        if response.status_code != 200:
            raise ClientError(f"refreshing the session failed: {reason(response)}")
        self.login = self.login.renewed(response.json())
        credentials.save(self.login)

    def _send(self, call: Any) -> httpx.Response:
        try:
            response: httpx.Response = call()
        except httpx.TransportError as exc:
            raise unreachable(self.login.url, exc) from exc
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response; a 401 is retried once with a renewed token."""
        response = self._send(
            lambda: self.http.request(method, path, headers=self._headers(), **kwargs)
        )
        if response.status_code == 401:
            self._refresh()
            response = self._send(
                lambda: self.http.request(method, path, headers=self._headers(), **kwargs)
            )
        return response

    @contextmanager
    def stream(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """A streamed response whose status is known to be 200."""
        for attempt in range(2):
            try:
                sent = {**self._headers(), **(headers or {})}
                with self.http.stream(method, path, headers=sent, **kwargs) as response:
                    if response.status_code == 401 and attempt == 0:
                        self._refresh()
                        continue
                    if response.status_code != 200:
                        response.read()
                        raise ClientError(reason(response))
                    yield response
                    return
            except httpx.TransportError as exc:
                raise unreachable(self.login.url, exc) from exc


def expect(response: httpx.Response, *codes: int) -> Any:
    """The JSON body (``None`` when empty) when the status is one of ``codes``."""
    if response.status_code not in codes:
        raise ClientError(reason(response))
    return response.json() if response.content else None
