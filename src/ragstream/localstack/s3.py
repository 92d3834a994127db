"""An S3-protocol server for ``BLOB_STORE=s3`` on one machine: ``s3s-fs``, a
small Rust server (crates.io) that keeps each object as a file under
``<data_dir>/s3``. The tests run the S3 blob store against it, a real server
speaking the protocol over HTTP, not an in-process mock.

No wheel ships it: it is built once with ``cargo install --locked --debug`` (a Rust toolchain,
https://rustup.rs) into ``<cache>/s3s-fs/<version>-debug`` (``RAG_CACHE_DIR``, by
default ``~/.cache/ragstream``), and found there, or on PATH, afterwards.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from ragstream.localstack.errors import StackError
from ragstream.localstack.kafka import cache_dir
from ragstream.localstack.ports import HOST
from ragstream.localstack.service import Service

logger = logging.getLogger(__name__)

S3S_FS_VERSION = "0.14.1"  # the newest that builds with Rust 1.92 (0.15 wants 1.96)
# A debug build: a test server needs no optimiser, and it builds in about 60 %
# of a release build's time (517 s against 820 s on 2 busy cores).
S3S_FS_BUILD = f"{S3S_FS_VERSION}-debug"
BUCKET = "ragstream"
# A server on loopback for one machine's stack: fixed keys, like the
# database's local password, only keep other programs' stray requests out.
ACCESS_KEY = "ragstream-local"
SECRET_KEY = "ragstream-local-secret"  # noqa: S105 - loopback only, see above
REGION = "us-east-1"


def s3s_fs_binary(cache: Path | None = None, *, build: bool = True) -> Path:
    """The cached build, else ``s3s-fs`` on PATH, else built now (minutes)."""
    root = (cache or cache_dir()) / "s3s-fs" / S3S_FS_BUILD
    built = root / "bin" / "s3s-fs"
    if built.is_file():
        return built
    found = shutil.which("s3s-fs")
    if found is not None:
        return Path(found)
    if not build:
        raise StackError(f"s3s-fs is not built: `rag services --blob-store s3` builds it in {root}")
    return _cargo_install(root)


def _cargo_install(root: Path) -> Path:
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(cargo).is_file():
        raise StackError(
            "s3s-fs (the local S3 server) is built with cargo, which was not found:"
            " install Rust (https://rustup.rs), or put an s3s-fs binary on PATH"
        )
    root.mkdir(parents=True, exist_ok=True)
    # One build at a time: parallel test sessions wait for the first.
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = root / "bin" / "s3s-fs"
        if built.is_file():
            return built
        began = time.monotonic()
        logger.info("building s3s-fs %s with cargo into %s (once; minutes)", S3S_FS_VERSION, root)
        log = root / "build.log"
        with log.open("w") as out:
            done = subprocess.run(
                [
                    cargo,
                    "install",
                    "s3s-fs",
                    "--version",
                    f"={S3S_FS_VERSION}",
                    "--features",
                    "binary",
                    "--locked",
                    "--debug",
                    "--root",
                    str(root),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "CARGO_TARGET_DIR": str(root / "target"),
                    # rustup's cargo finds rustc beside it (~/.cargo/bin may not be on PATH).
                    "PATH": os.pathsep.join((str(Path(cargo).parent), os.environ.get("PATH", ""))),
                },
                check=False,
            )
        shutil.rmtree(root / "target", ignore_errors=True)
        if done.returncode != 0 or not built.is_file():
            tail = log.read_text(errors="replace")[-2000:]
            raise StackError(f"building s3s-fs failed (exit {done.returncode}):\n{tail}")
        logger.info("s3s-fs built in %.0f s", time.monotonic() - began)
        return built


class S3Service(Service):
    """s3s-fs on loopback, its bucket created once it answers."""

    name = "s3"
    env_var = "BLOB_S3_ENDPOINT_URL"
    option = "--s3-port"
    ready_timeout = 30.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def settings(self) -> dict[str, str]:
        """What the services need to keep their blobs here."""
        return {
            "BLOB_STORE": "s3",
            "BLOB_S3_ENDPOINT_URL": self.url,
            "BLOB_S3_BUCKET": BUCKET,
            "BLOB_S3_REGION": REGION,
            "BLOB_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "BLOB_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def prepare(self) -> None:
        super().prepare()
        (self.home / "data").mkdir(exist_ok=True)
        self.binary = s3s_fs_binary()

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            str(self.home / "data"),
        ]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "RUST_LOG": "s3s_fs=info,s3s=warn"}

    def is_ready(self) -> bool:
        # Any answer at all: an unsigned request is refused, which is fine.
        response = httpx.get(self.url, timeout=1.0)
        return response.status_code < 500

    def after_ready(self) -> None:
        """The bucket, as an operator creates it before deploying."""
        client = local_client(self.url)
        try:
            client.create_bucket(Bucket=BUCKET)
        except client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


def local_client(url: str) -> Any:
    """A boto3 client of the local server (what tests and set-up use)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


def main() -> None:
    """Build s3s-fs if it is not yet, and say where it is: ``make test``
    runs it before the tests, whose time limit a build would pass."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    began = time.monotonic()
    binary = s3s_fs_binary()
    print(f"s3s-fs {S3S_FS_VERSION}: {binary} ({time.monotonic() - began:.0f} s)")
