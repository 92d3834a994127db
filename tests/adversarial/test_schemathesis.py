"""Schemathesis against the live gateway, as an API's client would run it:
``st run --checks all`` with every phase, the stateful one included (it
follows the links of /openapi.json: an upload's id to the document's
routes, a chat's conversation to its history, a key to its revocation).
Every status a route answers must be documented with the body it sends,
every request the schema allows must be accepted (or refused with a
documented reason), every request it forbids refused with a 4xx, and no
5xx but the documented 504 of a chat past its own deadline.

What is excluded, and the statuses a check accepts beyond its defaults, are
in schemathesis.toml beside this file, each with its reason. The gateway is
one of its own, with the per-user rate and concurrency limits raised (the
fuzzer sends hundreds of requests a minute; tests/e2e/test_limits.py tests
the limits); everything else is the test stack's. A failure carries
schemathesis's report: each finding with its curl reproducer."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import PASSWORD
from tests.support.processes import Component, side_stack

CONFIG = Path(__file__).with_name("schemathesis.toml")
LIMITS_RAISED = {
    "REQUESTS_PER_MINUTE": "1000000",
    # Per client address and clock minute, and every test sends from
    # 127.0.0.1: the fuzzer's own login and register cases, and the other
    # suites' forged tokens (counted in Redis, shared), must not leave
    # schemathesis's sign-in or its credentialed cases a 429.
    "LOGIN_ATTEMPTS_PER_MINUTE": "10000",
    "AUTH_FAILURES_PER_MINUTE": "1000000",
    "MAX_CONCURRENT_STREAMS": "100",
    "MAX_CONCURRENT_UPLOADS": "100",
}
RUN_SECONDS = 600


@pytest.fixture(scope="module")
def fuzzed(app_env: dict[str, str], log_dir: Path) -> Iterator[Component]:
    with side_stack(app_env, log_dir, "fuzz", **LIMITS_RAISED) as (gateway, _query_worker):
        yield gateway


def _register(base_url: str) -> str:
    username = f"fuzzer-{uuid.uuid4().hex[:10]}"
    body = {"username": username, "password": PASSWORD}
    created = httpx.post(f"{base_url}/api/auth/register", json=body, timeout=30)
    assert created.status_code == 201, created.text
    return username


def _schemathesis(base_url: str, username: str, seed: int, report: Path) -> tuple[int, str]:
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run"),
        f"{base_url}/openapi.json",
        *("--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"),
        *("--seed", str(seed), "--no-color", "--workers", "2"),
        *("--report", "junit", "--report-junit-path", str(report)),
    ]
    env = {**os.environ, "FUZZ_USERNAME": username, "FUZZ_PASSWORD": PASSWORD}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=RUN_SECONDS, check=False
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.timeout(RUN_SECONDS + 60)
def test_the_api_does_what_its_document_says(fuzzed: Component, tmp_path: Path) -> None:
    base_url = fuzzed.base_url or ""
    seed = random.randrange(2**32)
    started = time.monotonic()
    code, output = _schemathesis(base_url, _register(base_url), seed, tmp_path / "junit.xml")
    elapsed = time.monotonic() - started
    summary = f"schemathesis exit {code}, seed {seed}, {elapsed:.0f} s"
    # The figures (and schemathesis's warnings on coverage), shown with -s.
    report = next((output[i:] for i in map(output.find, ("WARNINGS", "SUMMARY")) if i >= 0), "")
    print(f"{summary}\n{report}")
    assert code == 0, f"{summary}:\n{output[-20000:]}"
    # The run did test: every phase ran (none skipped), on every operation.
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"(✅|❌) {phase}", output), f"{summary}: {phase} skipped:\n{output}"
    assert (tmp_path / "junit.xml").read_text().count("<testcase") >= 20, output[-5000:]
