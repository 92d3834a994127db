"""Listing a source's tree: the regular files it holds that the source's
patterns want, with their size and modification time (no byte is read
here), and the entries that cannot be synced, with the reason.

Symbolic links are never followed, to files or to folders: a link could
lead anywhere on the server (docs/sources.md). A folder that cannot be
listed is reported, and what was synced from it before is kept: an
unreadable folder is not a deleted one.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from shared.source_rules import matches, wanted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    size: int
    mtime_ns: int


@dataclass
class Listing:
    files: dict[str, Seen] = field(default_factory=dict)
    # relpath -> why it is not synced (a link, a FIFO, a folder not listed).
    refused: dict[str, str] = field(default_factory=dict)
    # Folders whose contents are unknown this run (relpaths).
    unlisted: list[str] = field(default_factory=list)

    def known(self, relpath: str) -> bool:
        """Whether this run can tell if ``relpath`` is still there."""
        return not any(relpath.startswith(folder + "/") for folder in self.unlisted)


def _why(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _printable_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept as surrogates
        return False
    return True


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def walk(root: Path, include: list[str], exclude: list[str]) -> Listing:
    """The listing of ``root`` (already resolved and checked). ``OSError``
    when the root itself cannot be listed. Folders are opened one below
    the other without following links (``O_NOFOLLOW``), so a folder swapped
    for a link while the walk goes on is refused, not followed."""
    listing = Listing()
    fd = os.open(root, _DIR_FLAGS)
    try:
        _folder(fd, "", include, exclude, listing)
    finally:
        os.close(fd)
    return listing


def open_beneath(root: Path, relpath: str) -> int:
    """A descriptor of the regular file at ``relpath`` under ``root``, each
    folder on the way and the file opened without following links (a link
    put there since the walk fails with ``ELOOP``). The caller closes it.
    ``OSError`` (``PermissionError``: the file's permissions deny reading)."""
    *folders, name = relpath.split("/")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for folder in folders:
            inner = os.open(folder, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(name, _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise IsADirectoryError(f"{relpath} is not a regular file")
    os.set_blocking(file_fd, True)
    return file_fd


def _folder(
    dir_fd: int, prefix: str, include: list[str], exclude: list[str], listing: Listing
) -> None:
    with os.scandir(dir_fd) as found:
        entries = sorted(found, key=lambda e: e.name)
    for entry in entries:
        if not _printable_utf8(entry.name):
            log.warning("Skipping a name that is not UTF-8 in %s", prefix or ".")
            continue
        relpath = f"{prefix}{entry.name}"
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if wanted(relpath, include, exclude):
                listing.refused[relpath] = f"cannot read its details: {_why(exc)}"
            continue
        if stat.S_ISDIR(info.st_mode):
            if not matches(relpath, exclude):
                _subfolder(dir_fd, entry.name, relpath, include, exclude, listing)
        elif not wanted(relpath, include, exclude):
            continue
        elif stat.S_ISLNK(info.st_mode):
            listing.refused[relpath] = "a symbolic link: not followed"
        elif not stat.S_ISREG(info.st_mode):
            listing.refused[relpath] = "not a regular file"
        else:
            listing.files[relpath] = Seen(info.st_size, info.st_mtime_ns)


def _subfolder(
    parent_fd: int,
    name: str,
    relpath: str,
    include: list[str],
    exclude: list[str],
    listing: Listing,
) -> None:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        listing.refused[relpath + "/"] = f"cannot list the folder: {_why(exc)}"
        listing.unlisted.append(relpath)
        return
    try:
        _folder(fd, relpath + "/", include, exclude, listing)
    except OSError as exc:
        listing.refused[relpath + "/"] = f"cannot list the folder: {_why(exc)}"
        listing.unlisted.append(relpath)
    finally:
        os.close(fd)
