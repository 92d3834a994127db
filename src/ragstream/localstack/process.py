"""One long-running child process: started, watched, and always stopped."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ragstream.localstack.errors import StackError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
TAIL_LINES = 20


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account to run a child as (PostgreSQL refuses root)."""

    user: str
    uid: int
    gid: int


def _load_prctl() -> Callable[..., int] | None:
    # Resolved here, in the parent: loading a library between fork and exec
    # can deadlock a process that has threads.
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return None
    return prctl


_PRCTL = _load_prctl()


def _death_signal_hook(death_signal: int, parent_pid: int) -> Callable[[], None]:
    """Runs in the child between fork and exec, after any uid switch (which
    would clear the setting): ask the kernel to signal the child when the
    parent dies, so a SIGKILLed ``rag`` leaves no servers behind."""

    def hook() -> None:
        if _PRCTL is None:
            return
        _PRCTL(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        # The parent may have died before prctl took effect.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), death_signal)

    return hook


class ManagedProcess:
    """A child in its own session and process group, so signals from the
    terminal reach only ``rag`` and it decides the order of shutdown.

    Linux delivers the parent-death signal when the *thread* that forked the
    child exits, so call :meth:`start` from a thread that outlives the child
    (the main thread, in practice).
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        log_path: Path | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        run_as: RunAs | None = None,
        stop_signal: int = signal.SIGTERM,
        signal_group: bool = True,
    ) -> None:
        self.name = name
        self.args = [str(arg) for arg in args]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.run_as = run_as
        self.stop_signal = stop_signal
        # False: the polite signal goes to the leader only, which stops its
        # own children in order (PostgreSQL); SIGKILL always hits the group.
        self.signal_group = signal_group
        self.started_at = 0.0
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def start(self) -> None:
        if self.alive:
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        logger.debug("starting %s: %s", self.name, " ".join(self.args))
        self.started_at = time.monotonic()
        if self.log_path is None:
            self._popen = self._spawn(None)
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- {stamp} rag started: {' '.join(self.args)}\n".encode())
            log.flush()
            self._popen = self._spawn(log.fileno())

    def _spawn(self, log_fd: int | None) -> subprocess.Popen[bytes]:
        run_as = self.run_as
        try:
            return subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT if log_fd is not None else None,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
                # The stop signal doubles as the parent-death signal: the
                # same orderly shutdown, just without us waiting for it.
                preexec_fn=_death_signal_hook(self.stop_signal, os.getpid()),
            )
        except OSError as exc:
            raise StackError(f"cannot start {self.name} ({self.args[0]}): {exc}") from exc

    def wait_ready(self, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> float:
        """Poll ``check`` until it returns True; seconds since start on success."""
        while (elapsed := self.poll_ready(check, timeout)) is None:
            time.sleep(interval)
        return elapsed

    def poll_ready(self, check: Callable[[], bool], timeout: float) -> float | None:
        """One probe: seconds since start if ready, None if not yet; raises
        if the process died or ``timeout`` seconds have passed since start."""
        if not self.alive:
            raise StackError(self._died_message("while starting"))
        if _safe(check):
            return time.monotonic() - self.started_at
        if time.monotonic() - self.started_at > timeout:
            waited = f"{self.name} was not ready after {timeout:.0f} s"
            raise StackError(waited + self._tail_suffix())
        return None

    def request_stop(self) -> None:
        """The polite stop signal only, without waiting: for stopping several
        children with overlapping grace periods."""
        self._signal(self.stop_signal, group=self.signal_group)

    def stop(self, timeout: float = 10.0) -> None:
        """The stop signal, then SIGKILL to the whole group after ``timeout``."""
        popen = self._popen
        if popen is None or popen.poll() is not None:
            return
        self.request_stop()
        try:
            popen.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s: killing it", self.name, timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole group at once, then reap it."""
        popen = self._popen
        if popen is None or popen.poll() is not None:
            return
        self._signal(signal.SIGKILL, group=True)
        popen.wait()

    def _signal(self, signum: int, *, group: bool) -> None:
        popen = self._popen
        # Only while the leader is unreaped: until then its pid (and so the
        # group id) cannot have been reused by an unrelated process.
        if popen is None or popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(popen.pid, signum)
            else:
                popen.send_signal(signum)

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            # The tail only: a Kafka log can be large.
            log.seek(max(0, self.log_path.stat().st_size - 64 * 1024))
            text = log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _died_message(self, when: str) -> str:
        return f"{self.name} exited with code {self.returncode} {when}{self._tail_suffix()}"

    def _tail_suffix(self) -> str:
        tail = self.log_tail()
        if not tail:
            return ""
        return f"; last lines of {self.log_path}:\n{tail}"


def _safe(check: Callable[[], bool]) -> bool:
    # A readiness probe failing is the normal state while a server boots.
    try:
        return check()
    except Exception as exc:
        logger.debug("not ready yet: %r", exc)
        return False
