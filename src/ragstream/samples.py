"""``rag up --samples``: a demo user, the sample documents indexed, and a
command to paste for a first streamed answer."""

from __future__ import annotations

import logging
import mimetypes
import shlex
import time
from pathlib import Path
from typing import Any

import httpx

from ragstream.api import expect

logger = logging.getLogger(__name__)

# The repository's samples/ folder: present in a checkout, not in a wheel.
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - a published demo account
INDEX_TIMEOUT = 60.0
EXAMPLE_QUESTION = "How many days do I have to submit an expense report, and who approves it?"


def _login(http: httpx.Client) -> dict[str, Any]:
    body = {"username": DEMO_USER, "password": DEMO_PASSWORD}
    # 409: the user exists from an earlier run, which is fine.
    expect(http.post("/api/auth/register", json=body), 201, 409)
    token: dict[str, Any] = expect(http.post("/api/auth/login", json=body), 200)
    return token


def _upload(http: httpx.Client, files: list[Path]) -> dict[str, str]:
    """Uploads the files not uploaded before; file name -> document id."""
    listed = expect(http.get("/api/documents"), 200)
    present = {doc["filename"] for doc in listed}
    queued: dict[str, str] = {}
    for path in files:
        if path.name in present:
            print(f"  {path.name}: already uploaded")
            continue
        mime = mimetypes.guess_type(path.name)[0] or "text/plain"
        upload = {"file": (path.name, path.read_bytes(), mime)}
        queued[path.name] = expect(http.post("/api/documents", files=upload), 202)["id"]
    return queued


def _wait_indexed(http: httpx.Client, queued: dict[str, str]) -> None:
    deadline = time.monotonic() + INDEX_TIMEOUT
    pending = dict(queued)
    while pending and time.monotonic() < deadline:
        for name, doc_id in list(pending.items()):
            doc = expect(http.get(f"/api/documents/{doc_id}"), 200)
            if doc["status"] in ("indexed", "failed"):
                detail = (
                    f"{doc.get('chunks', 0)} chunks"
                    if doc["status"] == "indexed"
                    else doc.get("error")
                )
                print(f"  {name}: {doc['status']} ({detail})")
                del pending[name]
        time.sleep(0.5)
    for name in pending:
        print(f"  {name}: still not indexed after {INDEX_TIMEOUT:.0f} s")


def curl_example(base_url: str, access_token: str) -> str:
    body = '{"message": "' + EXAMPLE_QUESTION + '"}'
    return (
        f"curl -N {base_url}/api/chat/stream \\\n"
        f"  -H {shlex.quote('Authorization: Bearer ' + access_token)} \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )


def load_samples(base_url: str, samples_dir: Path = SAMPLES_DIR) -> str | None:
    """The demo user's access token (None without samples), for the banner."""
    files = sorted(p for p in samples_dir.glob("*") if p.is_file()) if samples_dir.is_dir() else []
    if not files:
        print(f"No sample documents in {samples_dir}: skipping --samples.")
        return None
    print(f"Loading {len(files)} sample documents as user {DEMO_USER!r}:")
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        token = _login(http)
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        _wait_indexed(http, _upload(http, files))
    return str(token["access_token"])
