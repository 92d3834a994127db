"""Listing a source's tree: regular files with their size and time; links,
FIFOs and unlistable folders reported, never followed or read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync.walk import open_beneath, walk
from tests.support.processes import bound_by_permissions


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "deep.md").write_text("deep")
    (root / "top.txt").write_text("top")
    (root / "skip").mkdir()
    (root / "skip" / "x.txt").write_text("x")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    (root / "linkdir").symlink_to(tmp_path)
    os.mkfifo(root / "pipe.txt")
    return root


def test_files_links_and_specials(tree: Path) -> None:
    listing = walk(tree, [], ["skip"])
    assert sorted(listing.files) == ["a/b/deep.md", "top.txt"]
    assert listing.files["top.txt"].size == 3
    assert listing.refused == {
        "link.txt": "a symbolic link: not followed",
        "linkdir": "a symbolic link: not followed",
        "pipe.txt": "not a regular file",
    }


def test_include_narrows_and_excluded_entries_are_not_reported(tree: Path) -> None:
    listing = walk(tree, ["*.md"], [])
    assert sorted(listing.files) == ["a/b/deep.md"]
    assert listing.refused == {}


def test_open_beneath_reads_files_and_refuses_links_and_fifos(tree: Path) -> None:
    fd = open_beneath(tree, "a/b/deep.md")
    try:
        assert os.read(fd, 10) == b"deep"
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        open_beneath(tree, "link.txt")
    with pytest.raises(OSError, match=r"symbolic links|Not a directory"):
        open_beneath(tree, "linkdir/outside.txt")  # a link on the way, too
    with pytest.raises(OSError, match="not a regular file"):
        open_beneath(tree, "pipe.txt")  # and it does not block


_LIST = """
import json, sys
from pathlib import Path
from sync.walk import walk
listing = walk(Path(sys.argv[1]), [], [])
print(json.dumps({"refused": listing.refused, "unlisted": listing.unlisted,
                  "known": [listing.known("a/b/deep.md"), listing.known("top.txt")]}))
"""


def test_an_unlistable_folder_is_reported_and_its_paths_unknown(tree: Path) -> None:
    # In a child that permissions bind (as root: without CAP_DAC_OVERRIDE).
    (tree / "a").chmod(0)
    try:
        found = subprocess.run(
            [*bound_by_permissions(), sys.executable, "-c", _LIST, str(tree)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        (tree / "a").chmod(0o755)
    listing = json.loads(found.stdout)
    assert listing["refused"]["a/"] == "cannot list the folder: permission denied"
    assert listing["unlisted"] == ["a"]
    assert listing["known"] == [False, True]
