"""Forged and misused tokens of the OpenID provider (tests/support/oidc), on
a gateway that takes its tokens: always a 401, never a 500. Each starts from
what the control shows accepted (the provider's own key, its issuer, the
API's audience, a tenant) and changes one thing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.adversarial.test_forged_tokens import assert_refused
from tests.support.oidc_provider import API_AUDIENCE, OidcProvider


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(provider: OidcProvider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "aud": API_AUDIENCE,
        "iss": provider.issuer,
        "iat": now,
        "exp": now + 600,
        "tenant": provider.name("acme"),
        "groups": ["staff"],
        "preferred_username": provider.name("alice"),
    }
    claims.update(changes)  # None: left out (the provider's script drops nulls)
    return claims


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


async def _current_key(provider: OidcProvider) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        keys = (await http.get(f"{provider.issuer}/jwks")).json()["keys"]
    first: dict[str, Any] = keys[0]
    return first


async def test_the_control_a_token_signed_by_the_provider_is_accepted(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    """So the refusals below are for what they change, not for how the test
    makes tokens."""
    token = oidc_provider.sign(_claims(oidc_provider))
    response = await oidc_client.get(
        "/api/auth/verify", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["username"] == oidc_provider.name("alice")


# (label, changes to the control's claims); signed with the provider's current key.
FORGERIES: list[tuple[str, dict[str, Any]]] = [
    ("another-audience", {"aud": "https://another-api.test"}),
    ("audience-of-another-client", {"aud": "other-app"}),
    ("expired", {"exp": int(time.time()) - 300, "iat": int(time.time()) - 900}),
    ("missing-exp", {"exp": None}),
    ("missing-aud", {"aud": None}),
    ("missing-sub", {"sub": None}),
    ("missing-iat", {"iat": None}),
    ("missing-tenant", {"tenant": None}),
    ("tenant-not-text", {"tenant": ["acme"]}),
    ("another-tenant-for-a-known-user", {"tenant": "globex-elsewhere"}),
]


@pytest.mark.parametrize(("label", "changes"), FORGERIES, ids=[f[0] for f in FORGERIES])
async def test_a_provider_signed_token_with_bad_claims_is_refused(
    oidc_client: httpx.AsyncClient,
    oidc_provider: OidcProvider,
    label: str,
    changes: dict[str, Any],
) -> None:
    # alice exists first, so a changed tenant is a changed tenant, not a new user.
    await test_the_control_a_token_signed_by_the_provider_is_accepted(oidc_client, oidc_provider)
    await assert_refused(oidc_client, oidc_provider.sign(_claims(oidc_provider, **changes)), label)


async def test_a_token_from_another_issuer_is_refused(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    """Signed by the provider's own key, but naming another issuer."""
    token = oidc_provider.sign(_claims(oidc_provider, iss="http://127.0.0.1:9/evil"))
    await assert_refused(oidc_client, token, "another-issuer")


async def test_a_token_signed_by_a_key_the_provider_never_published_is_refused(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    token = oidc_provider.sign(_claims(oidc_provider), key="foreign")
    await assert_refused(oidc_client, token, "foreign-key")


async def test_an_id_token_issued_to_another_client_is_refused(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    """A real ID token of the same provider, for another application."""
    tokens = await oidc_provider.sign_in(
        "alice", client_id="other-app", client_secret="other-app-secret-for-tests-only"
    )
    await assert_refused(oidc_client, tokens.id_token, "id-token-of-other-app")


async def test_alg_none_is_refused(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    kid = (await _current_key(oidc_provider))["kid"]
    for alg in ("none", "None", "NONE"):
        token = _unsigned({"alg": alg, "kid": kid, "typ": "JWT"}, _claims(oidc_provider))
        await assert_refused(oidc_client, token, f"alg-{alg}")


async def test_hs256_signed_with_the_providers_public_key_is_refused(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    """The key confusion: the public key, known to all, as an HMAC secret
    (as PEM, as DER and as the JWK's modulus)."""
    jwk = await _current_key(oidc_provider)
    public = jwt.PyJWK(jwk).key
    secrets = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        jwk["n"].encode(),
    ]
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        for secret in secrets:
            header = {"alg": alg, "kid": jwk["kid"], "typ": "JWT"}
            unsigned = _unsigned(header, _claims(oidc_provider)).rsplit(".", 1)[0]
            signature = hmac.new(secret, unsigned.encode(), digest).digest()
            await assert_refused(oidc_client, f"{unsigned}.{_b64(signature)}", alg)


async def test_a_tampered_provider_token_is_refused(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    """A real token with its payload changed (another tenant), signature kept."""
    token = (await oidc_provider.sign_in("carol")).access_token
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tenant"] = oidc_provider.name("acme")
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    await assert_refused(oidc_client, forged, "tampered")
