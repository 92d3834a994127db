"""What a folder-sync source may be, checked the same way by the gateway
(when an admin adds one) and by the sync workers (before every run).

A source's path names a directory on the servers' disks (or a mount), so it
is a way to read any file the sync worker can: only directories under the
operator's ``SYNC_ROOTS`` are allowed, compared after symbolic links are
resolved, and a path with ``..`` in it is refused outright rather than
interpreted. Inside a source, symbolic links are never followed (docs/sources.md).
"""

from __future__ import annotations

import fnmatch
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from shared.errors import Forbidden, InvalidInput

MAX_PATH = 4096
MAX_PATTERNS = 50
MAX_PATTERN = 255
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_RULE = "1-64 characters of letters, digits and . _ - (starting with a letter or digit)"


def _printable(value: str) -> bool:
    return not any(unicodedata.category(c) == "Cc" for c in value)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_path(raw: str, roots: Sequence[Path]) -> str:
    """The source path to keep (normalised), or why not: ``InvalidInput``
    for one that is not an absolute plain path, ``Forbidden`` for one
    outside every ``SYNC_ROOTS`` directory (before or after its symbolic
    links are resolved, where this process can see it)."""
    if not roots:
        raise Forbidden("folder sync is off on this server: SYNC_ROOTS names no directory")
    if not raw or len(raw) > MAX_PATH or not _printable(raw):
        raise InvalidInput(f"the path must be 1-{MAX_PATH} printable characters")
    if not raw.startswith("/"):
        raise InvalidInput("the path must be absolute (start with /)")
    if ".." in PurePosixPath(raw).parts:
        raise InvalidInput("the path must not contain '..'")
    path = Path(os.path.normpath(raw))
    allowed = ", ".join(str(r) for r in roots)
    if not any(_within(path, Path(os.path.normpath(r))) for r in roots):
        raise Forbidden(f"the path is not under a directory of SYNC_ROOTS ({allowed})")
    if not any(_within(path.resolve(), Path(r).resolve()) for r in roots):
        raise Forbidden(f"the path leads outside SYNC_ROOTS ({allowed}) through a symbolic link")
    return str(path)


def resolve_root(path: str, roots: Sequence[Path]) -> Path:
    """The directory a run walks: ``path`` with its links resolved, which
    must exist, be a directory and still lie under ``SYNC_ROOTS`` (a link
    changed since the source was added is caught here). ``OSError`` or
    ``Forbidden`` say why not."""
    check_path(path, roots)
    resolved = Path(path).resolve(strict=True)
    if not resolved.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")
    return resolved


def check_patterns(patterns: Sequence[str], what: str) -> list[str]:
    if len(patterns) > MAX_PATTERNS:
        raise InvalidInput(f"at most {MAX_PATTERNS} {what} patterns")
    for pattern in patterns:
        if not pattern or len(pattern) > MAX_PATTERN or not _printable(pattern):
            raise InvalidInput(f"each {what} pattern must be 1-{MAX_PATTERN} printable characters")
    return list(dict.fromkeys(patterns))


def matches(relpath: str, patterns: Sequence[str]) -> bool:
    """Whether a path relative to the source's root matches one of the
    patterns: a pattern without ``/`` matches a file or folder name
    anywhere (``*.pdf``, ``~$*``); one with ``/`` matches the whole relative
    path, ``*`` crossing folders (``drafts/*``, ``*/archive/*``)."""
    name = relpath.rsplit("/", 1)[-1]
    for pattern in patterns:
        target = relpath if "/" in pattern else name
        if fnmatch.fnmatchcase(target, pattern.strip("/") if "/" in pattern else pattern):
            return True
    return False


def wanted(relpath: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """A file is synced when it matches an include pattern (or there are
    none) and no exclude pattern; exclude wins."""
    if matches(relpath, exclude):
        return False
    return not include or matches(relpath, include)
