"""Which folders a source may name, and which files its patterns take."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import Forbidden, InvalidInput
from shared.source_rules import check_path, check_patterns, resolve_root, wanted


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "shares" / "team").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    return tmp_path / "shares"


def test_a_folder_under_a_root_is_kept_normalised(root: Path) -> None:
    assert check_path(f"{root}/team/", [root]) == f"{root}/team"
    assert check_path(f"{root}//team", [root]) == f"{root}/team"
    assert check_path(str(root), [root]) == str(root)


@pytest.mark.parametrize("raw", ["", "relative/path", "/a/\x00b", "/a/\nb", "/a/\x85b"])
def test_paths_that_are_not_absolute_plain_paths_are_refused(root: Path, raw: str) -> None:
    with pytest.raises(InvalidInput):
        check_path(raw, [root])


def test_dot_dot_is_refused_even_when_it_would_land_inside(root: Path) -> None:
    with pytest.raises(InvalidInput, match=r"\.\."):
        check_path(f"{root}/team/../team", [root])
    with pytest.raises(InvalidInput, match=r"\.\."):
        check_path(f"{root}/../secret", [root])


def test_outside_the_roots_is_forbidden(root: Path) -> None:
    with pytest.raises(Forbidden, match="SYNC_ROOTS"):
        check_path(str(root.parent / "secret"), [root])
    # A prefix of the name is not a parent folder.
    with pytest.raises(Forbidden):
        check_path(f"{root}-other", [root])


def test_no_roots_means_folder_sync_is_off(root: Path) -> None:
    with pytest.raises(Forbidden, match="off"):
        check_path(str(root), [])


def test_a_symbolic_link_leading_outside_is_forbidden(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "secret")
    with pytest.raises(Forbidden, match="symbolic link"):
        check_path(f"{root}/escape", [root])
    with pytest.raises(Forbidden):
        resolve_root(f"{root}/escape", [root])
    # One leading to another place inside the roots is fine.
    (root / "alias").symlink_to(root / "team")
    assert resolve_root(f"{root}/alias", [root]) == (root / "team").resolve()


def test_a_run_needs_the_folder_to_exist(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_root(f"{root}/missing", [root])


@pytest.mark.parametrize(
    ("relpath", "include", "exclude", "expected"),
    [
        ("a/b/report.pdf", [], [], True),
        ("a/b/report.pdf", ["*.pdf"], [], True),
        ("a/b/report.docx", ["*.pdf"], [], False),
        ("a/b/~$report.docx", [], ["~$*"], False),
        ("drafts/x.md", [], ["drafts/*"], False),
        # A pattern with / matches from the source's folder.
        ("keep/drafts/x.md", [], ["drafts/*"], True),
        ("keep/drafts/x.md", [], ["*/drafts/*"], False),
        ("notes/x.md", ["*.md"], ["*.pdf"], True),
        ("notes/x.md", ["*.md"], ["*.md"], False),  # exclude wins
    ],
)
def test_patterns(relpath: str, include: list[str], exclude: list[str], expected: bool) -> None:
    assert wanted(relpath, include, exclude) is expected


def test_patterns_are_bounded() -> None:
    with pytest.raises(InvalidInput):
        check_patterns([""], "include")
    with pytest.raises(InvalidInput):
        check_patterns(["*"] * 51, "include")
    assert check_patterns(["*.md", "*.md"], "include") == ["*.md"]
