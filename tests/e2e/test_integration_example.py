"""docs/integration.md's promises: the example service (plain aiokafka, run
as its own process) gets a document indexed, and ``GET /asyncapi`` serves
the checked-in AsyncAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.api import new_user, stream_chat, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "kafka_service.py"


def _run_example(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_the_example_service_indexes_a_document(
    app_env: dict[str, str], client: httpx.AsyncClient, tmp_path: Path
) -> None:
    user = await new_user(client, "example")
    note = tmp_path / "parking.md"
    note.write_text("# Parking\n\nVisitors park on level minus two, bay Quokka.\n")
    started = time.monotonic()
    run = await asyncio.to_thread(
        _run_example, app_env, "--tenant", user.tenant_id, "--user", user.id, str(note)
    )
    took = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    [doc_id] = [line.split(": ", 1)[1] for line in lines if line.startswith("document: ")]
    statuses = [line for line in lines if line.startswith("status: ")]
    assert statuses == ["status: queued", "status: processing", "status: indexed"]

    doc = await wait_for_status(client, user, doc_id)
    assert doc["status"] == "indexed" and doc["filename"] == "parking.md"
    _, events = await stream_chat(client, user, {"message": "Where do visitors park?"})
    [sources] = [e.data for e in events if e.event == "sources"]
    assert doc_id in {s["document_id"] for s in sources}
    print(f"example process: {took:.1f} s to indexed; printed {statuses}")


async def test_the_example_reports_a_failed_document(
    app_env: dict[str, str], client: httpx.AsyncClient, tmp_path: Path
) -> None:
    user = await new_user(client, "example-fail")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café crème".encode("latin-1"))
    run = await asyncio.to_thread(
        _run_example, app_env, "--tenant", user.tenant_id, "--user", user.id, str(bad)
    )
    assert run.returncode == 1, run.stdout + run.stderr
    [failed] = [line for line in run.stdout.splitlines() if line.startswith("status: failed")]
    assert "not UTF-8" in failed


async def test_asyncapi_is_served_as_checked_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/asyncapi")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    checked_in = json.loads((ROOT / "schemas" / "asyncapi.json").read_text())
    assert response.json() == checked_in
    assert response.json()["channels"]["ingestRequests"]["address"] == "rag.ingest.requests"
