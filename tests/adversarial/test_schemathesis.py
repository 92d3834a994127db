"""Schemathesis against the live gateway: every operation in /openapi.json,
called with generated input as a signed-in user, answers without a 5xx (but
the documented 504 of a chat past its own deadline), with a body that
matches the schema it declares, and refuses calls without credentials where
it declares it needs them; input the schema forbids is refused with a 4xx
(schemathesis's ``negative_data_rejection``: never a 2xx or 3xx).

Bounded (EXAMPLES per operation and kind of input, no shrinking) so the run
stays within about a minute and a half; a failure names the operation and
carries schemathesis's curl reproducer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
)

from tests.support.api import PASSWORD
from tests.support.processes import Component

DEADLINE_ROUTE = "/api/chat"


def no_server_error(ctx: CheckContext, response: Response, case: schemathesis.Case) -> bool | None:
    """``not_a_server_error``, less one answer that is the API's contract: a
    whole-answer chat that gets no answer within the ``stream_timeout`` the
    client chose is a 504 (tests/e2e/test_timeout.py), and generated input
    may choose 1e-308 seconds. Any other 5xx, there included, fails."""
    if response.status_code == 504 and case.path == DEADLINE_ROUTE:
        detail = str(response.json().get("detail", ""))
        if detail.startswith("no answer for "):
            return True
    return not_a_server_error(ctx, response, case)


# Examples per operation: valid input (every check), then input the schema
# forbids (which must be refused with a 4xx: neither accepted nor a 5xx).
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 10}
CHECKS = {
    GenerationMode.POSITIVE: [no_server_error, response_schema_conformance, ignored_auth],
    GenerationMode.NEGATIVE: [no_server_error, negative_data_rejection],
}


def _sign_in(base_url: str, username: str) -> dict[str, str]:
    """A fresh access token: an operation that logs out or revokes must not
    leave the operations after it testing only the 401 path."""
    body = {"username": username, "password": PASSWORD}
    login = httpx.post(f"{base_url}/api/auth/login", json=body, timeout=30)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _fuzzer(
    operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS[mode], timeout=60)

    return fuzz


def test_no_operation_answers_with_a_server_error(gateway: Component) -> None:
    base_url = gateway.base_url or ""
    username = f"fuzzer-{uuid.uuid4().hex[:10]}"
    body = {"username": username, "password": PASSWORD}
    assert httpx.post(f"{base_url}/api/auth/register", json=body, timeout=30).status_code == 201
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    # Every case is sent with the fuzzer's token (``headers`` below), so a
    # case "without" Authorization would be sent with it all the same; and
    # query parameters the schema does not name are ignored, as HTTP APIs
    # do, not refused. Neither is an input the schema forbids.
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in EXAMPLES:
            headers = _sign_in(base_url, username)
            try:
                _fuzzer(operation, mode, base_url, headers)()
            except Unsatisfiable:
                # No input to get wrong (GET /health takes none): nothing to negate.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # every operation is tried; all failures reported
                failures.append(f"{operation.label} ({mode.value} input):\n{exc}")
        tested += 1
    assert tested >= 5, "the schema lists too few operations to have been read right"
    assert not failures, "\n\n".join(failures)
