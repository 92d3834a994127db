"""Keeping a group of child processes up, and taking them down in order."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from types import FrameType

import httpx

from ragstream.errors import CliError
from ragstream.localstack import LocalStack, ManagedProcess

logger = logging.getLogger(__name__)

APP_STOP_TIMEOUT = 10.0


class Shutdown(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, so that no ``except
    Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_shutdown(signum: int, _frame: FrameType | None) -> None:
    # Further signals are ignored: the shutdown under way will finish, and
    # a second Ctrl-C must not interrupt it halfway.
    ignore_signals()
    raise Shutdown(signum)


def install_shutdown_handlers() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_shutdown)


def ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def stop_apps(apps: Sequence[ManagedProcess]) -> None:
    """SIGTERM to all at once, so their grace periods overlap, then SIGKILL."""
    for app in apps:
        app.request_stop()
    deadline = time.monotonic() + APP_STOP_TIMEOUT
    for app in apps:
        app.stop(timeout=max(0.0, deadline - time.monotonic()))


def exited_app(apps: Sequence[ManagedProcess]) -> ManagedProcess | None:
    return next((app for app in apps if not app.alive), None)


def wait_healthy(url: str, apps: Sequence[ManagedProcess], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = exited_app(apps)
        if dead is not None:
            raise CliError(f"{dead.name} exited with code {dead.returncode} while starting", 1)
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise CliError(f"{url} did not answer 200 within {timeout:.0f} s", 1)


def watch(stack: LocalStack, apps: Sequence[ManagedProcess]) -> int:
    """Block until a child exits on its own (exit code 1); a signal ends
    this with :class:`Shutdown` instead."""
    while True:
        for service in stack.crashed():
            code = service.process.returncode if service.process else None
            logger.error(
                "%s exited unexpectedly with code %s: see %s", service.name, code, service.log_path
            )
            return 1
        dead = exited_app(apps)
        if dead is not None:
            logger.error("%s exited unexpectedly with code %s", dead.name, dead.returncode)
            return 1
        time.sleep(0.5)
