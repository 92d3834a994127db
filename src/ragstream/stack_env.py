"""How the operator commands find a running local stack: ``rag up`` (and
``rag services``) record how to reach its servers in ``<data dir>/stack.env``,
and ``rag migrate``, ``reindex``, ``reconcile``, ``dlq``, ``user create`` and
``eval`` read it for every variable the environment does not set.

The file is shell syntax (``NAME='value'`` lines, so ``set -a; . .rag/stack.env``
works too), created with mode 0600: it holds the generated database password.
The environment always wins, variable by variable, so a deployment, which
sets its variables, is unchanged; a variable set to an empty value counts as
set.

The values are put in ``os.environ`` of the command's own process, where
every ``Settings()`` (the command's, and those of the service code it runs)
reads them.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ragstream.errors import CliError
from ragstream.localstack import INFRA_VARS

FILE_NAME = "stack.env"
DEFAULT_DATA_DIR = Path(".rag")

# What a command needs to reach the stack and work on its data, taken from
# what ``rag up`` gave its services. SECRET_KEY is left out: no operator
# command signs or checks a token (the gateway's copy is in secret_key).
KAFKA_SETTINGS = (
    "KAFKA_TOPIC_PREFIX",
    "KAFKA_ENABLE_IDEMPOTENCE",
    "KAFKA_REPLICATION_FACTOR",
    "KAFKA_MIN_INSYNC_REPLICAS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
)
BLOB_SETTINGS = (
    "BLOB_DIR",
    "BLOB_STORE",
    "BLOB_S3_ENDPOINT_URL",
    "BLOB_S3_BUCKET",
    "BLOB_S3_PREFIX",
    "BLOB_S3_REGION",
    "BLOB_S3_ACCESS_KEY_ID",
    "BLOB_S3_SECRET_ACCESS_KEY",
    "BLOB_S3_SESSION_TOKEN",
    "BLOB_S3_SSE",
    "BLOB_S3_KMS_KEY_ID",
)
RECORDED = (*INFRA_VARS, *KAFKA_SETTINGS, *BLOB_SETTINGS)
# The gateway's URL (``rag up`` only): what ``rag eval`` talks to.
GATEWAY_VAR = "RAG_URL"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = """\
# Written by `rag {command}`: how to reach this local stack. `rag migrate`,
# `reindex`, `reconcile`, `dlq`, `user create` and `eval` read it for every
# variable the environment does not set (docs/cli.md). It holds a password.
"""

Origin = Literal["environment", "file", "default"]


def file_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def record(
    data_dir: Path,
    env: Mapping[str, str],
    *,
    command: str,
    gateway_url: str | None = None,
) -> Path:
    """Write ``<data_dir>/stack.env`` from the environment the services were
    given (``env``): the RECORDED variables it has, the topic prefix always."""
    from shared.config import Settings

    values = {name: env[name] for name in RECORDED if env.get(name)}
    values.setdefault(
        "KAFKA_TOPIC_PREFIX", str(Settings.model_fields["kafka_topic_prefix"].default)
    )
    if gateway_url is not None:
        values[GATEWAY_VAR] = gateway_url
    text = _HEADER.format(command=command) + "".join(
        f"{name}={shlex.quote(value)}\n" for name, value in values.items()
    )
    path = file_path(data_dir)
    staging = path.with_name(f".{FILE_NAME}.tmp")
    # Created 0600 from the start: never readable by others, even briefly.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(staging, 0o600)  # an older file of that name kept its mode
    os.replace(staging, path)
    return path


def read(data_dir: Path) -> dict[str, str] | None:
    """The recorded variables; None when there is no file."""
    path = file_path(data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", 1) from exc
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, quoted = line.removeprefix("export ").partition("=")
        try:
            words = shlex.split(quoted)
        except ValueError:
            words = None
        if not equals or not _NAME.match(name) or words is None or len(words) > 1:
            raise CliError(f"{path}, line {number}: not NAME=value (`rag up` rewrites the file)")
        values[name] = words[0] if words else ""
    return values


@dataclass(frozen=True)
class Sources:
    """Where each setting of a command came from, for its error messages."""

    data_dir: Path
    recorded: dict[str, str] | None  # the file's variables; None: no file
    used: frozenset[str] = field(default_factory=frozenset)  # taken from the file

    @property
    def path(self) -> Path:
        return file_path(self.data_dir)

    def origin(self, name: str, environ: Mapping[str, str] | None = None) -> Origin:
        if name in self.used:
            return "file"
        return "environment" if name in (os.environ if environ is None else environ) else "default"

    def hint(self, name: str) -> str:
        """What to do when the setting ``name`` leads nowhere."""
        folder = f"{self.data_dir}{os.sep}"
        origin = self.origin(name)
        if origin == "file":
            return f"read from {self.path}: is the `rag up` that wrote it running? else set {name}"
        if origin == "environment":
            return f"is {name} right? a local stack's settings are read from {folder} if unset"
        if self.recorded is None:
            return (
                f"{name} is unset and {folder} has no local stack's settings: start `rag up`,"
                f" pass --data-dir, or set {name}"
            )
        return f"{name} is unset, and {self.path} does not say it: set {name}"


def use(data_dir: Path, environ: MutableMapping[str, str] | None = None) -> Sources:
    """Put the recorded variables the environment lacks into it."""
    target = os.environ if environ is None else environ
    recorded = read(data_dir)
    used = []
    for name, value in (recorded or {}).items():
        if name not in target:
            target[name] = value
            used.append(name)
    return Sources(data_dir, recorded, frozenset(used))
