"""Running ``rag`` with a pseudo-terminal as its stdout and stderr, as a
person at a terminal runs it (the output is JSON lines otherwise)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def _wide(fd: int, rows: int = 50, columns: int = 200) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: every writer closed its end
        return b""


def run_on_terminal(
    args: Sequence[str],
    env: dict[str, str],
    *,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> tuple[int, str]:
    """Exit status and what the command wrote to the terminal (``\\r\\n``
    made ``\\n``), once it has ended; killed after ``timeout`` seconds."""
    leader, follower = pty.openpty()
    _wide(follower)
    try:
        process = subprocess.Popen(
            list(args),
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
        )
        os.close(follower)
        if stdin is not None and process.stdin is not None:
            process.stdin.write(stdin.encode())
            process.stdin.close()
        chunks = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([leader], [], [], left)[0]:
                continue
            if not (chunk := _read(leader)):
                break
            chunks.append(chunk)
        else:
            process.kill()
        status = process.wait(timeout=10)
    finally:
        os.close(leader)
    return status, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


class Terminal:
    """A long-running process on a pseudo-terminal; a thread keeps reading
    what it writes (a full terminal would block it), also into ``log``."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        leader, follower = pty.openpty()
        _wide(follower)
        self._leader = leader
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self.log = log
        self.process = subprocess.Popen(
            list(args), env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
        )
        os.close(follower)
        self._reader = threading.Thread(target=self._read_all, daemon=True)
        self._reader.start()

    def _read_all(self) -> None:
        with self.log.open("ab") as out:
            while chunk := _read(self._leader):
                out.write(chunk)
                out.flush()
                with self._lock:
                    self._chunks.append(chunk)

    def text(self) -> str:
        """Everything written so far."""
        with self._lock:
            data = b"".join(self._chunks)
        return data.decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, found: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if found(text):
                return text
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"not seen on the terminal:\n{self.text()[-4000:]}")

    def close(self) -> None:
        self._reader.join(timeout=10)
        os.close(self._leader)
