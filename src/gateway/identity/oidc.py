"""Single sign-on: an OpenID provider's tokens, verified against its keys.

The discovery document and the key set (JWKS) are read once and kept for
OIDC_JWKS_CACHE_SECONDS; a token signed with a key not in the set prompts
one more read (the provider rotated its keys), at most once per
OIDC_JWKS_REFRESH_SECONDS, so made-up ``kid``s cannot turn the gateway
into a flood against the provider. Nothing is read at start-up: a gateway
whose provider is down still starts, and local accounts still sign in
(the break-glass of docs/runbook.md). Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog

from shared.config import Settings
from shared.errors import AuthError, Unavailable

log = structlog.get_logger(__name__)
_INVALID = "Invalid token"
_REQUIRED = ["iss", "sub", "aud", "exp", "iat"]
# The key type each allowed algorithm needs (shared.config.OIDC_ALGORITHMS).
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class ProviderKey:
    key: jwt.PyJWK
    key_type: str
    algorithm: str | None  # the JWK's own `alg`, when it names one

    def fits(self, algorithm: str) -> bool:
        """A key is used only for the algorithm it was published for (or,
        naming none, its key type's): never as an HMAC secret."""
        if self.algorithm is not None and self.algorithm != algorithm:
            return False
        return _KEY_TYPE.get(algorithm[:2]) == self.key_type


@dataclass(frozen=True)
class ExternalClaims:
    """What a verified provider token says about its user, by the mapping
    settings (OIDC_*_CLAIM): the groups are kept for group sync."""

    issuer: str
    subject: str
    tenant: str
    username: str
    groups: tuple[str, ...]
    # Whether the token carries the groups claim (a list) at all: a token
    # without it (an access token some providers leave it out of) changes
    # no group membership; one with an empty list leaves every claim group.
    groups_claimed: bool = False


class ProviderKeys:
    """The provider's signing keys by ``kid``, read from its discovery
    document's ``jwks_uri`` and cached."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        assert settings.oidc_issuer_url is not None
        self._http = http
        self._issuer = settings.oidc_issuer_url
        self._max_age = settings.oidc_jwks_cache_seconds
        self._min_refresh = settings.oidc_jwks_refresh_seconds
        self._keys: dict[str, ProviderKey] = {}
        # The discovery document last read (its endpoints, for the sign-in).
        self.discovery: dict[str, Any] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self, kid: str | None, algorithm: str) -> ProviderKey:
        """The key named ``kid`` (a token naming none: the provider's only
        key for ``algorithm``); AuthError if the provider has none such even
        after a fresh read (when one is allowed)."""
        if self._stale(self._max_age):
            await self._load(self._max_age)
        key = self._find(kid, algorithm)
        if key is None and self._stale(self._min_refresh):
            await self._load(self._min_refresh)
            key = self._find(kid, algorithm)
        if key is None:
            raise AuthError(_INVALID)
        return key

    def _find(self, kid: str | None, algorithm: str) -> ProviderKey | None:
        if kid is not None:
            return self._keys.get(kid)
        fitting = [key for key in self._keys.values() if key.fits(algorithm)]
        return fitting[0] if len(fitting) == 1 else None

    async def endpoint(self, name: str) -> str:
        """An endpoint of the discovery document (``token_endpoint``, ...)."""
        if self._stale(self._max_age) or not self.discovery:
            await self._load(self._max_age if self.discovery else 0)
        url = self.discovery.get(name)
        if not isinstance(url, str):
            raise Unavailable(f"the sign-in provider offers no {name}")
        return url

    def _stale(self, age: float) -> bool:
        return self._loaded_at is None or time.monotonic() - self._loaded_at >= age

    async def _load(self, age: float) -> None:
        async with self._lock:
            if not self._stale(age):
                return  # read by another request while this one waited
            try:
                self._keys = await self._fetch()
            except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError) as exc:
                log.warning("OpenID provider keys unreadable", error=type(exc).__name__)
                if not self._keys:
                    raise Unavailable("the sign-in provider cannot be reached") from None
                # Keep the keys we have; try again after the refresh interval.
            self._loaded_at = time.monotonic()

    async def _fetch(self) -> dict[str, ProviderKey]:
        url = f"{self._issuer.rstrip('/')}/.well-known/openid-configuration"
        discovery = await self._json(url)
        if discovery.get("issuer") != self._issuer:
            raise ValueError("the discovery document names another issuer")
        jwks = await self._json(str(discovery["jwks_uri"]))
        self.discovery = discovery
        keys: dict[str, ProviderKey] = {}
        for data in jwks.get("keys", []):
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue  # a key type this gateway cannot use: skipped, not fatal
            algorithm = data.get("alg")
            # A key without a kid (a provider with one key) gets a made-up name:
            # found by a token naming none, and verified like any other.
            name = str(data["kid"]) if "kid" in data else f"#{len(keys)}"
            keys[name] = ProviderKey(
                key, str(data.get("kty")), algorithm if isinstance(algorithm, str) else None
            )
        log.info("OpenID provider keys read", keys=len(keys))
        return keys

    async def _json(self, url: str) -> dict[str, Any]:
        response = await self._http.get(url)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body


class OidcVerifier:
    """Verifies the provider's access and ID tokens presented as bearer
    credentials: signature by a provider key with an allowed algorithm,
    issuer, audience, expiry (with OIDC_LEEWAY_SECONDS)."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        assert settings.oidc_issuer_url is not None
        self.issuer = settings.oidc_issuer_url
        self.keys = ProviderKeys(http, settings)
        audiences = (
            settings.oidc_audience,
            settings.oidc_client_id,
            settings.oidc_device_client_id,
        )
        self._audiences = [a for a in audiences if a]
        self._algorithms = list(settings.oidc_algorithms)
        self._leeway = settings.oidc_leeway_seconds
        self._tenant_claim = settings.oidc_tenant_claim
        self._groups_claim = settings.oidc_groups_claim
        self._username_claim = settings.oidc_username_claim

    def claims_to_be_ours(self, token: str) -> bool:
        """Whether the token says the provider issued it (unverified: this
        only picks the check it gets; ragstream's own tokens say "ragstream")."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return isinstance(claims, dict) and claims.get("iss") == self.issuer

    async def verify(self, token: str, *, nonce: str | None = None) -> ExternalClaims:
        """The token's user, or AuthError (one message whatever is wrong).
        ``nonce``: the ID token of a sign-in must carry the one it sent."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(_INVALID) from None
        algorithm, kid = header.get("alg"), header.get("kid")
        # Pinned per token to the allow-list: never `none`, never an HS*
        # "signed" with the public key.
        if algorithm not in self._algorithms or not isinstance(kid, str | None):
            raise AuthError(_INVALID)
        key = await self.keys.get(kid, algorithm)
        if not key.fits(algorithm):
            raise AuthError(_INVALID)
        try:
            claims = jwt.decode(
                token,
                key.key.key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self._audiences,
                leeway=self._leeway,
                options={"require": _REQUIRED},
            )
        except jwt.PyJWTError:
            raise AuthError(_INVALID) from None
        if nonce is not None and claims.get("nonce") != nonce:
            raise AuthError(_INVALID)
        return self._mapped(claims)

    def _mapped(self, claims: dict[str, Any]) -> ExternalClaims:
        subject, tenant = claims.get("sub"), claims.get(self._tenant_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthError(_INVALID)
        if not isinstance(tenant, str) or not tenant.strip():
            log.warning("Provider token without a tenant claim", claim=self._tenant_claim)
            raise AuthError(_INVALID)
        username = claims.get(self._username_claim)
        groups = claims.get(self._groups_claim)
        return ExternalClaims(
            issuer=self.issuer,
            subject=subject,
            tenant=tenant.strip(),
            username=username if isinstance(username, str) and username else subject,
            groups=tuple(g for g in groups if isinstance(g, str))
            if isinstance(groups, list)
            else (),
            groups_claimed=isinstance(groups, list),
        )
