"""A real OpenID provider for the tests: tests/support/oidc/provider.mjs
(the ``oidc-provider`` npm package) run by Node on a loopback port.

``npm ci`` installs it once into a cache folder named after its lock file's
hash (RAGSTREAM_CACHE_DIR, default ~/.cache/ragstream), so later runs start
it in about a second, offline. ``sign_in`` goes through the provider's real
authorization-code flow with PKCE, its sign-in and consent pages included,
as a browser would; ``rotate`` and ``sign`` are the script's test-only
``/admin`` endpoints."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import httpx

SOURCE = Path(__file__).parent / "oidc"
API_AUDIENCE = "https://ragstream.test/api"
WEB_CLIENT = "ragstream-web"
WEB_SECRET = "web-client-secret-for-tests-only"
CLI_CLIENT = "ragstream-cli"
# The tests never follow it: the code is read from the redirect itself.
DEFAULT_REDIRECT = "http://127.0.0.1:9/callback"
_LISTENING = re.compile(r"oidc-provider listening on (http://\S+)")
_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def installed() -> Path:
    """The folder holding the script and its node_modules, ``npm ci`` run
    there the first time for this lock file."""
    lock = (SOURCE / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("RAGSTREAM_CACHE_DIR", Path.home() / ".cache" / "ragstream"))
    home = cache / f"oidc-provider-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (home / "node_modules" / "oidc-provider").is_dir():
        staging = home.with_name(home.name + f".{os.getpid()}")
        staging.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(SOURCE / name, staging / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            check=True,
            timeout=300,
        )
        if not home.exists():
            staging.rename(home)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    shutil.copy(SOURCE / "provider.mjs", home / "provider.mjs")  # the current script
    return home


def gateway_settings(provider: OidcProvider) -> dict[str, str]:
    """A gateway's settings for ``provider``'s users and clients."""
    return {
        "OIDC_ISSUER_URL": provider.issuer,
        "OIDC_CLIENT_ID": WEB_CLIENT,
        "OIDC_CLIENT_SECRET": WEB_SECRET,
        "OIDC_DEVICE_CLIENT_ID": CLI_CLIENT,
        "OIDC_AUDIENCE": API_AUDIENCE,
        "OIDC_SCOPES": "openid email profile groups tenant api",
        "OIDC_ADMIN_GROUP": "rag-admins",
        # Each test rotates right after a first read: no wait of the default 30 s.
        "OIDC_JWKS_REFRESH_SECONDS": "1",
    }


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Tokens:
    access_token: str
    id_token: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class OidcProvider:
    log_path: Path
    redirect_uris: list[str] = field(default_factory=lambda: [DEFAULT_REDIRECT])
    issuer: str = ""
    process: subprocess.Popen[bytes] | None = None
    # In the provider's usernames and tenant names: alice is "alice-<run_id>".
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))

    def name(self, login: str) -> str:
        """The username (or tenant name) the provider gives ``login``."""
        return f"{login}-{self.run_id}"

    def start(self, timeout: float = 60) -> None:
        home = installed()
        env = {
            **os.environ,
            "PORT": "0",
            "API_AUDIENCE": API_AUDIENCE,
            "REDIRECT_URIS": ",".join(self.redirect_uris),
            "WEB_CLIENT_SECRET": WEB_SECRET,
            "RUN_ID": self.run_id,
        }
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["node", "provider.mjs"], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log_path.read_bytes()[start:].decode(errors="replace"))
            if found:
                self.issuer = found.group(1)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the OpenID provider did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.issuer}/admin/{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def rotate(self) -> str:
        """A new signing key (its kid), published first; the old stay published."""
        return str(self._admin("rotate")["kid"])

    async def approve_device(self, verification_uri_complete: str, login: str) -> None:
        """The user's part of the device flow: open the address the CLI
        showed, confirm the code, sign in as ``login``, consent."""
        async with httpx.AsyncClient(timeout=30) as http:
            page = await http.get(verification_uri_complete)
            await through_pages(http, page, login, None)

    def allow_redirect(self, uri: str) -> None:
        """Register ``uri`` as a redirect URI of the web client."""
        self._admin("redirect_uris", {"uris": [uri]})

    def retire_old_keys(self) -> None:
        self._admin("retire")

    def sign(self, claims: dict[str, Any], *, key: str = "current") -> str:
        """A JWT signed with the provider's current key (``foreign``: a key
        it never published), with ``claims`` over its defaults (iss, iat,
        exp); a claim given as None is left out."""
        return str(self._admin("sign", {"claims": claims, "key": key})["token"])

    async def sign_in(
        self,
        login: str,
        *,
        client_id: str = WEB_CLIENT,
        client_secret: str = WEB_SECRET,
        redirect_uri: str = DEFAULT_REDIRECT,
    ) -> Tokens:
        """Tokens for ``login`` by the authorization-code flow with PKCE: the
        provider's sign-in page, its consent page, the code, the token call."""
        verifier, challenge = _pkce()
        state = secrets.token_urlsafe(16)
        params = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid email profile groups tenant api",
            "state": state,
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        async with httpx.AsyncClient(base_url=self.issuer, timeout=30) as http:
            response = await http.get("/auth", params=params)
            back = await through_pages(http, response, login, redirect_uri)
            query = parse_qs(urlparse(back).query)
            if "code" not in query:
                raise RuntimeError(f"the provider refused: {query}")
            code = query["code"][0]
            tokens = await http.post(
                "/token",
                auth=(client_id, client_secret),
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
            )
        tokens.raise_for_status()
        body = tokens.json()
        return Tokens(body["access_token"], body["id_token"], body)


async def through_pages(
    http: httpx.AsyncClient, response: httpx.Response, login: str, redirect_uri: str | None
) -> str:
    """From a provider page (an authorization request's answer, or the
    device flow's code page): follow its redirects and submit its forms
    (their hidden fields, the sign-in as ``login``, the consent), as a
    browser would, until it redirects to ``redirect_uri`` (that URL), or
    shows a page without a form (the device flow's success: "")."""
    for _ in range(16):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if redirect_uri is not None and location.startswith(redirect_uri):
                return location
            response = await http.get(location)
            continue
        response.raise_for_status()
        action = _FORM_ACTION.search(response.text)
        if action is None:
            if redirect_uri is None:
                return ""
            raise RuntimeError(f"no form on the provider's page: {response.text[:500]}")
        target = urljoin(str(response.url), unescape(action.group(1)))
        form = {unescape(n): unescape(v) for n, v in _HIDDEN.findall(response.text)}
        if 'name="login"' in response.text:
            form |= {"login": login, "password": "any"}
        response = await http.post(target, data=form)
    raise RuntimeError("the provider's sign-in did not end")
