"""Running a server as an unprivileged account when ``rag`` runs as root.

PostgreSQL refuses to start as root, and root is the norm in containers and
CI. So, as root, a system account is created once and the server's files are
handed to it; as any other user nothing here is needed.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from ragstream.localstack.errors import StackError
from ragstream.localstack.process import RunAs

logger = logging.getLogger(__name__)

ACCOUNT = "ragstream-pg"
_USERADD_EXISTS = 9  # useradd's exit code when another process won the race


def running_as_root() -> bool:
    return os.geteuid() == 0


def ensure_account(name: str = ACCOUNT) -> RunAs:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _create_account(name)
        entry = pwd.getpwnam(name)
    return RunAs(name, entry.pw_uid, entry.pw_gid)


def _create_account(name: str) -> None:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise StackError(
            "PostgreSQL will not run as root and `useradd` is missing to create an account "
            "for it: run rag as a normal user, or set DATABASE_URL"
        )
    args = [useradd, "--system", "--no-create-home", "--user-group", name]
    if Path("/usr/sbin/nologin").exists():
        args[1:1] = ["--shell", "/usr/sbin/nologin"]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode not in (0, _USERADD_EXISTS):
        raise StackError(f"creating the system account {name} failed: {result.stderr.strip()}")
    logger.info("created system account %s to run PostgreSQL (it refuses root)", name)


def make_traversable(path: Path) -> None:
    """Let other accounts pass through (not list) every folder above ``path``:
    pytest's /tmp/pytest-of-root, for one, is 0700."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("allowing other users to traverse %s (o+x)", parent)
            parent.chmod(mode | stat.S_IXOTH)


def hand_over(path: Path, account: RunAs) -> None:
    """chown -R, skipped when the top already belongs to the account. The top
    is changed last, so an interrupted hand-over is redone next time."""
    if path.stat().st_uid == account.uid:
        return
    try:
        for root, _dirs, files in os.walk(path, topdown=False):
            for name in files:
                os.lchown(os.path.join(root, name), account.uid, account.gid)
            os.chown(root, account.uid, account.gid)
    except OSError as exc:
        raise StackError(
            f"cannot give {path} to the account {account.user} ({exc.strerror}): "
            "run rag as a normal user, or set DATABASE_URL"
        ) from exc
