"""What every local server has in common: prepare once, launch, wait, stop."""

from __future__ import annotations

import logging
import os
import signal
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from ragstream.localstack.errors import StackError
from ragstream.localstack.ports import ensure_free
from ragstream.localstack.process import ManagedProcess, RunAs

logger = logging.getLogger(__name__)


class Service(ABC):
    """One server under ``<data_dir>/<name>``, logging to ``<data_dir>/logs``.

    ``start()`` = ``prepare()`` + ``launch()`` + ``wait_ready()``; the stack
    calls the three separately so that slow preparations overlap and all
    servers boot at the same time.
    """

    # Per instance where one kind runs several times (a cluster's nodes).
    name: str
    env_var: ClassVar[str]
    option: ClassVar[str]  # the command-line flag that moves the port
    ready_timeout: ClassVar[float] = 60.0
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    signal_group: ClassVar[bool] = True

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.run_as: RunAs | None = None
        self.process: ManagedProcess | None = None
        self.ready_seconds: float | None = None
        self._stopped = False

    @property
    def home(self) -> Path:
        return self.data_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / f"{self.name}.log"

    @property
    @abstractmethod
    def url(self) -> str:
        """How clients reach it: the value of ``env_var``."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def is_ready(self) -> bool: ...

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    @property
    def crashed(self) -> bool:
        """Launched, not stopped by us, and no longer running."""
        return self.process is not None and not self._stopped and not self.process.alive

    def ports(self) -> dict[int, str]:
        """Ports this server will bind, each with what to do if it is taken."""
        return {self.port: f"pass {self.option} or set {self.env_var} to use that server"}

    def check_ports(self) -> None:
        for port, hint in self.ports().items():
            ensure_free(port, hint)

    def prepare(self) -> None:
        """One-time, idempotent set-up (directories, downloads, initdb)."""
        self.home.mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def make_process(self) -> ManagedProcess:
        return ManagedProcess(
            self.name,
            self.command(),
            log_path=self.log_path,
            env=self.environment(),
            cwd=self.home,
            run_as=self.run_as,
            stop_signal=self.stop_signal,
            signal_group=self.signal_group,
        )

    def launch(self) -> None:
        if self.alive:
            raise StackError(f"{self.name} is already running")
        self.process = self.make_process()
        self._stopped = False
        self.process.start()

    @property
    def display_url(self) -> str:
        """The URL as it may appear in logs (no secrets)."""
        return self.url

    def wait_ready(self) -> None:
        while not self.poll_ready():
            time.sleep(0.2)

    def poll_ready(self) -> bool:
        """One readiness probe; raises if the server died or timed out."""
        if self.process is None:
            raise StackError(f"{self.name} was never launched")
        elapsed = self.process.poll_ready(self.is_ready, self.ready_timeout)
        if elapsed is None:
            return False
        self.after_ready()
        self.ready_seconds = elapsed
        logger.info("%s ready at %s in %.1f s", self.name, self.display_url, elapsed)
        return True

    def after_ready(self) -> None:  # noqa: B027 - a hook, empty unless overridden
        """Work that needs the server up (creating a database)."""

    def start(self) -> None:
        self.check_ports()
        self.prepare()
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> None:
        self._stopped = True
        if self.process is not None and self.process.alive:
            self.process.stop(timeout)
            logger.info("%s stopped", self.name)

    def request_stop(self) -> None:
        """The stop signal only, without waiting (``stop()`` then waits)."""
        self._stopped = True
        if self.process is not None and self.process.alive:
            self.process.request_stop()

    def kill(self) -> None:
        """SIGKILL, no shutdown at all, as when its machine dies: for fault
        tests. Not a crash: ``start()`` brings it back."""
        self._stopped = True
        if self.process is not None:
            self.process.kill()
            logger.info("%s killed", self.name)
