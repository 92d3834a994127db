"""A deployment with ``BLOB_STORE=s3``: gateway, ingest and query workers as
processes, their blobs in a bucket of a real S3-protocol server (s3s-fs,
``s3_server``), nothing in ``BLOB_DIR``. An upload is indexed from the
bucket and answered from; deleting the document removes its object; the
bucket's prefix is marked as the deployment's blob root; ``rag reconcile``
finds (and then removes) an orphaned object and a document whose object is
gone, as it does in a folder.

The reconciler leaves anything younger than ``RECONCILE_MIN_AGE_SECONDS``
(at least 60) alone, and S3 sets an object's age itself: the orphans are
made first and the reconciler runs once they are a minute old.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ragstream.localstack.s3 import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, S3Service, local_client
from tests.support.api import new_user, upload, wait_for_status
from tests.support.deployment import RAG, Deployment, ask, cited_documents

FIRE = (
    b"# Fire drill\n\n"
    b"When the alarm sounds, everyone gathers at the assembly point by the fountain.\n"
)
QUESTION = "Where does everyone gather when the fire alarm sounds?"
MIN_AGE = 60


@pytest.fixture
async def deployment(
    stack_env: dict[str, str], s3_server: S3Service, tmp_path: Path, log_dir: Path
) -> AsyncIterator[Deployment]:
    base = {
        **stack_env,
        "SECRET_KEY": secrets.token_hex(32),
        "LOG_LEVEL": "INFO",
        "ALLOW_REGISTRATION": "true",
        "LOGIN_ATTEMPTS_PER_MINUTE": "10000",
        "BLOB_STORE": "s3",
        "BLOB_S3_ENDPOINT_URL": s3_server.url,
        "BLOB_S3_BUCKET": BUCKET,
        "BLOB_S3_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}/",
        "BLOB_S3_REGION": REGION,
        "BLOB_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "BLOB_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        # The test runs the reconciler itself, when its orphans are old enough.
        "RECONCILE_INTERVAL_SECONDS": "0",
    }
    made = Deployment(base, tmp_path, log_dir)
    await made.create_database()
    try:
        yield made
    finally:
        made.stop()
        await made.drop_database()


def _objects(client: Any, prefix: str) -> set[str]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"][len(prefix) :] for item in listed.get("Contents", ())}


def _reconcile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RAG), "reconcile", *args],
        env={**os.environ, **env, "RECONCILE_MIN_AGE_SECONDS": str(MIN_AGE)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _row_exists(url: str, doc_id: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM documents WHERE id = $1", uuid.UUID(doc_id)))
    finally:
        await conn.close()


# It waits for its orphans to be a minute old (about 120 s in all here).
@pytest.mark.timeout(400)
async def test_uploads_live_in_the_bucket_from_upload_to_answer_to_delete_to_reconcile(
    deployment: Deployment, s3_server: S3Service
) -> None:
    env = deployment.env
    prefix = env["BLOB_S3_PREFIX"]
    s3 = local_client(s3_server.url)
    gateway = deployment.start()
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        # An orphan: an object no document row refers to (a gateway that died
        # between blob and row leaves one).
        orphan = f"{user.tenant_id}/{uuid.uuid4()}"
        s3.put_object(Bucket=BUCKET, Key=prefix + orphan, Body=b"left behind")
        # A document whose object is lost.
        lost = await upload(client, user, "lost.md", b"# Lost\n\nThis file's object goes.\n")
        assert (await wait_for_status(client, user, lost))["status"] == "indexed"
        s3.delete_object(Bucket=BUCKET, Key=f"{prefix}{user.tenant_id}/{lost}")

        fire = await upload(client, user, "fire-drill.md", FIRE)
        assert (await wait_for_status(client, user, fire))["status"] == "indexed"
        assert fire in cited_documents(await ask(client, user, QUESTION))
        # In the bucket, under the prefix, with the blob root's marker; not on disk.
        held = _objects(s3, prefix)
        assert {f"{user.tenant_id}/{fire}", orphan, ".ragstream-blob-root"} <= held
        assert not deployment.blob_dir.exists()
        marker = s3.get_object(Bucket=BUCKET, Key=f"{prefix}.ragstream-blob-root")["Body"]
        conn = await asyncpg.connect(env["DATABASE_URL"])
        try:
            assert marker.read().decode().strip() == str(
                await conn.fetchval("SELECT marker FROM blob_root")
            )
        finally:
            await conn.close()

        deleted = await client.delete(f"/api/documents/{fire}", headers=user.headers)
        assert deleted.status_code == 204, deleted.text
        assert f"{user.tenant_id}/{fire}" not in _objects(s3, prefix)

    # Once the orphans are old enough to be no upload in flight.
    await asyncio.sleep(max(0.0, MIN_AGE + 2 - (time.monotonic() - began)))
    dry = await asyncio.to_thread(_reconcile, env, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert f"would remove orphan blob {orphan}" in dry.stdout
    assert f"would remove document without blob {lost}" in dry.stdout
    assert orphan in _objects(s3, prefix)

    done = await asyncio.to_thread(_reconcile, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 orphan blobs, 1 documents without blob" in done.stdout
    assert orphan not in _objects(s3, prefix)
    assert not await _row_exists(env["DATABASE_URL"], lost)


async def test_reconcile_refuses_a_prefix_that_is_not_the_deployments(
    deployment: Deployment, s3_server: S3Service
) -> None:
    """A wrong ``BLOB_S3_PREFIX`` (or bucket) looks like every object lost:
    refused, nothing removed, as for a wrong ``BLOB_DIR``."""
    gateway = deployment.start()
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        doc = await upload(client, user, "fire-drill.md", FIRE)
        assert (await wait_for_status(client, user, doc))["status"] == "indexed"
    deployment.stop()
    env = {**deployment.env, "BLOB_S3_PREFIX": f"typo-{uuid.uuid4().hex[:6]}/"}

    refused = await asyncio.to_thread(_reconcile, env)

    assert refused.returncode == 3, (refused.stdout, refused.stderr[-3000:])
    assert "refused (blob-root-empty)" in refused.stderr
    assert (
        f"S3 s3://{BUCKET}/{env['BLOB_S3_PREFIX']} holds no blobs and no marker" in refused.stderr
    )
    assert "BLOB_S3_PREFIX" in refused.stderr
    assert await _row_exists(deployment.env["DATABASE_URL"], doc)
