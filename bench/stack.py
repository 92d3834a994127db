"""What a benchmark runs against: the local stack (Kafka, PostgreSQL, Redis,
Chroma) started once per run through ``ragstream.localstack``, and per
benchmark its own gateway, workers and stub LLM as real processes, each
benchmark under a topic prefix of its own so none reads another's messages.

Infrastructure already running is used instead when all four of
``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``, ``REDIS_URL``, ``CHROMA_URL``
are set (as the test suite does).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ragstream.localstack.ports import free_port
from ragstream.localstack.stack import INFRA_VARS, LocalStack, StackConfig
from shared.storage.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Proc:
    """A process this run started, logging to its own file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    base_url: str = ""
    # uvicorn re-raises the signal it stopped on: SIGTERM would then end the
    # process before pyinstrument writes its report, SIGINT lets it.
    stop_signal: signal.Signals = signal.SIGTERM

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kb(self) -> int:
        """Resident memory now, from /proc (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _spawn(
    name: str, args: list[str], env: dict[str, str], log_dir: Path, *, profile: bool = False
) -> Proc:
    """``profile``: run under pyinstrument, whose report (where the process's
    main thread spent its time) is written to ``<name>.profile.txt`` when the
    process exits on SIGTERM."""
    if profile:
        report = log_dir / f"{name}.profile.txt"
        args = [
            "-m",
            "pyinstrument",
            "-r",
            "text",
            "-p",
            "show_all=false",
            "-o",
            str(report),
            *args,
        ]
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    return Proc(name, process, log_path, stop_signal=signal.SIGINT if profile else signal.SIGTERM)


def _wait_for(proc: Proc, ready: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.log()[-3000:]}")
        if callable(ready) and ready():
            return
        time.sleep(0.2)
    proc.stop()
    raise TimeoutError(f"{proc.name} did not start:\n{proc.log()[-3000:]}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Infra:
    """The four servers, and where this run's logs go."""

    env: dict[str, str]
    log_dir: Path
    profile: bool = False

    @contextmanager
    def deployment(self, **overrides: str) -> Iterator[Deployment]:
        """A fresh topic prefix and the app settings every benchmark shares;
        ``overrides`` are more settings (``EMBEDDING_PROVIDER="onnx"``, ...)."""
        env = {
            **self.env,
            "SECRET_KEY": secrets.token_hex(32),
            "BLOB_DIR": str(self.log_dir / "blobs"),
            "KAFKA_TOPIC_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "LOG_LEVEL": "INFO",
            "ALLOW_REGISTRATION": "true",
            # The benchmark's clients all come from 127.0.0.1, many at once.
            "LOGIN_ATTEMPTS_PER_MINUTE": "10000",
            "REQUESTS_PER_MINUTE": "1000000",
            "MAX_CONCURRENT_STREAMS": "1000",
            "MAX_CONCURRENT_UPLOADS": "1000",
            "MAX_UPLOAD_MB": "50",
            "TENANT_MAX_DOCUMENTS": "100000",
            "TENANT_MAX_MB": "100000",
            "EMBEDDING_PROVIDER": "hashing",
            **overrides,
        }
        with ExitStack() as stack:
            yield Deployment(env, self.log_dir, stack, profile=self.profile)


@dataclass
class Deployment:
    """The processes of one benchmark; all stopped when its block ends."""

    env: dict[str, str]
    log_dir: Path
    _stack: ExitStack
    profile: bool = False
    procs: list[Proc] = field(default_factory=list)

    def _own(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        self._stack.callback(proc.stop)
        return proc

    def stub_llm(self, tokens: int, rate: float) -> str:
        """Start the stub LLM; point the workers started after this at it."""
        port = free_port()
        args = ["-m", "bench.stub_llm", "--port", str(port), "--tokens", str(tokens)]
        # Wherever the benchmark was started from, the stub imports from this checkout.
        where = {"PYTHONPATH": str(REPO)}
        proc = self._own(
            _spawn(f"stub-llm-{port}", [*args, "--rate", str(rate)], where, self.log_dir)
        )
        _wait_for(proc, lambda: _port_open(port), 30)
        self.env.update(
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
            OPENAI_API_KEY="bench",
            LLM_MODEL="bench-stub",
            # The benchmark measures streaming, so every question reaches the
            # model whatever the relevance gate would say of its passages.
            LLM_ANSWER_UNGROUNDED="true",
        )
        return self.env["OPENAI_BASE_URL"]

    def gateway(self, **env: str) -> Proc:
        port = free_port()
        args = ["-m", "ragstream", "gateway", "--host", "127.0.0.1", "--port", str(port)]
        env = {**self.env, **env}
        proc = self._own(_spawn(f"gateway-{port}", args, env, self.log_dir, profile=self.profile))
        proc.base_url = f"http://127.0.0.1:{port}"
        _wait_for(proc, lambda: _healthy(f"{proc.base_url}/health"), 90)
        return proc

    def worker(self, kind: str, **env: str) -> Proc:
        return self._worker(kind, ["-m", "ragstream", "worker", kind], env)

    def blaster(self, tokens: int, rate: float) -> Proc:
        """A stand-in query worker that answers at once (bench.blaster)."""
        env = {
            "BENCH_BLAST_TOKENS": str(tokens),
            "BENCH_BLAST_RATE": str(rate),
            "PYTHONPATH": str(REPO),
        }
        return self._worker("blaster", ["-m", "bench.blaster"], env)

    def _worker(self, kind: str, args: list[str], env: dict[str, str]) -> Proc:
        name = f"{kind}-worker-{len(self.procs)}-{self.env['KAFKA_TOPIC_PREFIX']}"
        env = {**self.env, **env}
        proc = self._own(_spawn(name, args, env, self.log_dir, profile=self.profile))
        _wait_for(proc, lambda: "Worker started" in proc.log(), 120)
        return proc


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def infrastructure(data_dir: Path, *, profile: bool = False) -> Iterator[Infra]:
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if all(os.environ.get(name) for name in INFRA_VARS):
        env = {name: os.environ[name] for name in INFRA_VARS}
        upgrade(env["DATABASE_URL"])
        yield Infra(env, log_dir, profile)
        return
    with LocalStack(StackConfig.ephemeral(data_dir / "stack")) as stack:
        upgrade(stack.env["DATABASE_URL"])
        yield Infra(dict(stack.env), log_dir, profile)
