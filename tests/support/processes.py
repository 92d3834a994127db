"""Starting ragstream components as real processes, the way `rag up` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Re-exported: the tests take it from here with the rest.
from ragstream.localstack.ports import free_port as free_port


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    base_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Where this process's lines begin: a restarted component appends to
    # the same file, and must not be taken as started by its predecessor.
    log_start: int = 0

    def log(self) -> str:
        """This process's log lines (not those of earlier runs)."""
        with self.log_path.open("rb") as f:
            f.seek(self.log_start)
            return f.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye, as when a node dies."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# Capabilities that let root read any file whatever its permissions.
_DAC = "-dac_override,-dac_read_search"


def bound_by_permissions() -> list[str]:
    """A command prefix under which file permissions deny reads: nothing
    for a user, and for root (tests may run as root, who reads a mode 000
    file) setpriv dropping the capabilities that bypass them."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--bounding-set={_DAC}", f"--inh-caps={_DAC}"]


def start(
    name: str,
    args: list[str],
    env: dict[str, str],
    log_dir: Path,
    *,
    prefix: list[str] | None = None,
) -> Component:
    log_path = log_dir / f"{name}.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "ragstream", *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Component(name, process, log_path, env=env, log_start=log_start)


def wait_for_log(component: Component, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in component.log():
            return
        if component.process.poll() is not None:
            raise RuntimeError(f"{component.name} exited:\n{component.log()[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{component.name} never logged {text!r}:\n{component.log()[-3000:]}")


def start_gateway(name: str, env: dict[str, str], log_dir: Path, *, workers: int = 1) -> Component:
    port = free_port()
    args = ["gateway", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    gateway = start(name, args, env, log_dir)
    gateway.base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{gateway.log()[-3000:]}")
        try:
            if httpx.get(f"{gateway.base_url}/health", timeout=1).status_code == 200:
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    gateway.stop()
    raise TimeoutError(f"{name} did not become healthy:\n{gateway.log()[-3000:]}")


def start_worker(
    kind: str,
    env: dict[str, str],
    log_dir: Path,
    name: str | None = None,
    *,
    prefix: list[str] | None = None,
) -> Component:
    worker = start(name or f"{kind}-worker", ["worker", kind], env, log_dir, prefix=prefix)
    wait_for_log(worker, "Worker started", timeout=90)
    return worker


@contextmanager
def side_stack(
    app_env: dict[str, str], log_dir: Path, name: str, **settings: str
) -> Iterator[tuple[Component, Component]]:
    """A gateway and a query worker with settings of their own, on topics of
    their own (the prefix gets ``-name``). PostgreSQL, Redis and Chroma are
    the default stack's, so what its ingest worker indexes is found here too.
    Yields (gateway, query worker)."""
    env = {**app_env, "KAFKA_TOPIC_PREFIX": f"{app_env['KAFKA_TOPIC_PREFIX']}-{name}", **settings}
    query = start_worker("query", env, log_dir, name=f"query-worker-{name}")
    try:
        gateway = start_gateway(f"gateway-{name}", env, log_dir)
        try:
            yield gateway, query
        finally:
            gateway.stop()
    finally:
        query.stop()
