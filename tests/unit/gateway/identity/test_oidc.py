"""The provider-token check on its own: settings that refuse unsafe
algorithms, the key cache and its bounded re-reads, the claim mapping.
The provider here is an in-process JWKS server (httpx.MockTransport); the
same paths run against the real provider in tests/e2e/test_oidc.py and
tests/adversarial/test_oidc_tokens.py."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from gateway.identity.external import role_of
from gateway.identity.oidc import ExternalClaims, OidcVerifier
from shared.config import Settings
from shared.errors import AuthError, Unavailable

ISSUER = "https://login.example.test"
AUDIENCE = "https://api.example.test"


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_unsafe_or_no_algorithms_are_refused_at_start_up(algorithms: list[str]) -> None:
    with pytest.raises(ValidationError, match="OIDC_ALGORITHMS"):
        Settings(oidc_algorithms=algorithms)


def test_an_issuer_needs_a_client_id() -> None:
    with pytest.raises(ValidationError, match="OIDC_CLIENT_ID"):
        Settings(oidc_issuer_url=ISSUER)


class FakeProvider:
    """Discovery and JWKS over httpx.MockTransport, counting key reads."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, Any]] = [("k1", rsa.generate_private_key(65537, 2048))]
        self.jwks_reads = 0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("down", request=request)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        self.jwks_reads += 1
        keys = []
        for kid, private in self.keys:
            data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
            keys.append({**data, "kid": kid, "use": "sig", "alg": "RS256"})
        return httpx.Response(200, json={"keys": keys})

    def token(self, kid: str = "k1", **changes: Any) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "iat": now, "exp": now + 60}
        claims |= {"tenant": "acme", "groups": ["g1", "admins"], "preferred_username": "ann"}
        claims |= changes
        private = dict(self.keys)[kid]
        return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid})


def _verifier(provider: FakeProvider, **settings: Any) -> OidcVerifier:
    config = Settings(
        oidc_issuer_url=ISSUER,
        oidc_client_id="web",
        oidc_audience=AUDIENCE,
        oidc_jwks_refresh_seconds=settings.pop("refresh", 0.2),
        **settings,
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider.handler))
    return OidcVerifier(http, config)


async def test_a_valid_token_maps_to_claims_and_keys_are_read_once() -> None:
    provider = FakeProvider()
    verifier = _verifier(provider)
    for _ in range(3):
        claims = await verifier.verify(provider.token())
    assert claims == ExternalClaims(ISSUER, "u1", "acme", "ann", ("g1", "admins"), True)
    assert provider.jwks_reads == 1
    # No groups claim (or not a list): no group membership is changed by it.
    for groups in (None, "g1"):
        unclaimed = await verifier.verify(provider.token(groups=groups))
        assert (unclaimed.groups, unclaimed.groups_claimed) == ((), False)
    emptied = await verifier.verify(provider.token(groups=[]))
    assert (emptied.groups, emptied.groups_claimed) == ((), True)
    assert role_of(claims, "admins") == "admin"
    assert role_of(claims, "others") == "member"
    assert role_of(claims, None) is None


async def test_an_unknown_kid_prompts_a_bounded_re_read() -> None:
    """A rotation is picked up; a flood of made-up kids reads the keys at
    most once per OIDC_JWKS_REFRESH_SECONDS."""
    provider = FakeProvider()
    verifier = _verifier(provider, refresh=0.2)
    await verifier.verify(provider.token())
    provider.keys.insert(0, ("k2", rsa.generate_private_key(65537, 2048)))
    for _ in range(5):
        with pytest.raises(AuthError):
            await verifier.verify(provider.token(kid="k2"))
    assert provider.jwks_reads == 1  # too soon after the first read
    await asyncio.sleep(0.25)
    assert (await verifier.verify(provider.token(kid="k2"))).subject == "u1"
    assert provider.jwks_reads == 2


async def test_a_key_published_for_another_algorithm_or_type_is_not_used() -> None:
    provider = FakeProvider()
    verifier = _verifier(provider, oidc_algorithms=["RS256", "ES256"])
    await verifier.verify(provider.token())
    ec_key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "iat": now, "exp": now + 60}
    token = jwt.encode(claims | {"tenant": "t"}, ec_key, algorithm="ES256", headers={"kid": "k1"})
    with pytest.raises(AuthError):
        await verifier.verify(token)


async def test_an_unreachable_provider_is_unavailable_until_keys_were_read() -> None:
    provider = FakeProvider()
    provider.down = True
    verifier = _verifier(provider, refresh=0.1)
    with pytest.raises(Unavailable):
        await verifier.verify(provider.token())
    provider.down = False
    await asyncio.sleep(0.15)
    await verifier.verify(provider.token())
    # Once read, the keys outlive an outage of the provider.
    provider.down = True
    await asyncio.sleep(0.15)
    assert (await verifier.verify(provider.token())).tenant == "acme"


@pytest.mark.parametrize(
    "changes",
    [
        {"tenant": None},
        {"tenant": "  "},
        {"sub": ""},
        {"aud": "https://elsewhere.test"},
        {"iss": "https://elsewhere.test"},
        {"exp": int(time.time()) - 120},
    ],
)
async def test_bad_claims_are_refused(changes: dict[str, Any]) -> None:
    provider = FakeProvider()
    verifier = _verifier(provider)
    token = provider.token(**{k: v for k, v in changes.items() if v is not None})
    if changes.get("tenant", "") is None:
        token = provider.token(tenant=None)
    with pytest.raises(AuthError):
        await verifier.verify(token)


def test_only_tokens_naming_the_issuer_go_to_the_provider_check() -> None:
    provider = FakeProvider()
    verifier = _verifier(provider)
    assert verifier.claims_to_be_ours(provider.token())
    assert not verifier.claims_to_be_ours(provider.token(iss="ragstream"))
    assert not verifier.claims_to_be_ours("not-a-jwt")


async def test_a_sign_in_id_token_must_carry_the_nonce_sent() -> None:
    provider = FakeProvider()
    verifier = _verifier(provider)
    token = provider.token(nonce="n-1")
    assert (await verifier.verify(token, nonce="n-1")).subject == "u1"
    for nonce in ("n-2", ""):
        with pytest.raises(AuthError):
            await verifier.verify(token, nonce=nonce)
    with pytest.raises(AuthError):
        await verifier.verify(provider.token(), nonce="n-1")  # none in the token


async def test_a_token_without_kid_uses_the_providers_only_key() -> None:
    """A provider with one key may leave `kid` out; with two, a token
    naming none is refused (which key would be a guess)."""
    provider = FakeProvider()
    verifier = _verifier(provider)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "iat": now, "exp": now + 60}
    claims |= {"tenant": "acme"}
    token = jwt.encode(claims, provider.keys[0][1], algorithm="RS256")
    assert "kid" not in jwt.get_unverified_header(token)
    assert (await verifier.verify(token)).subject == "u1"
    provider.keys.append(("k2", rsa.generate_private_key(65537, 2048)))
    await asyncio.sleep(0.25)
    await verifier.verify(provider.token(kid="k2"))  # the second key is read
    with pytest.raises(AuthError):
        await verifier.verify(token)
