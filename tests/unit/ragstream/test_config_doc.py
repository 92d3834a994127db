"""docs/configuration.md's settings tables are generated from the settings
object (``rag config-doc``): they cannot drift from it, and a setting added
without a description or a section fails here rather than going undocumented."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings

from ragstream.cli import run
from ragstream.config_doc import ConfigDocError, command, render, tables, variable
from shared.config import DOC_SECTIONS, Settings, _doc

DOC = Path(__file__).parents[3] / "docs" / "configuration.md"


def _doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_committed_doc_is_generated() -> None:
    text = _doc_text()
    assert render(text) == text, "docs/configuration.md is stale: run `rag config-doc`"


def test_every_setting_has_exactly_one_row() -> None:
    lines = _doc_text().splitlines()
    for name, field in Settings.model_fields.items():
        row = f"| `{variable(name, field)}` |"
        assert sum(line.startswith(row) for line in lines) == 1, name


def test_every_section_has_a_block() -> None:
    text = _doc_text()
    for section in DOC_SECTIONS:
        assert text.count(f"<!-- settings:{section} -->\n") == 1, section


def test_prose_outside_the_markers_is_kept() -> None:
    template = "# Title\n\nProse.\n\n<!-- settings:identity -->\nold\n<!-- /settings -->\n\nMore.\n"

    class One(BaseSettings):
        knob: int = Field(default=3, description="A knob.", json_schema_extra=_doc("identity"))

    assert render(template, One) == (
        "# Title\n\nProse.\n\n<!-- settings:identity -->\n"
        "| variable | default | meaning |\n| --- | --- | --- |\n"
        "| `KNOB` | 3 | A knob. |\n<!-- /settings -->\n\nMore.\n"
    )


def test_doc_default_overrides_the_python_default() -> None:
    class One(BaseSettings):
        key: str | None = Field(
            default=None, description="A key.", json_schema_extra=_doc("identity", "— (required)")
        )

    assert "| `KEY` | — (required) | A key. |" in tables(One)["identity"]


def test_a_setting_without_a_description_fails() -> None:
    class Undescribed(Settings):
        new_knob: int = Field(default=1, json_schema_extra=_doc("identity"))

    with pytest.raises(ConfigDocError, match="NEW_KNOB has no description"):
        render(_doc_text(), Undescribed)


def test_a_setting_without_a_section_fails() -> None:
    class Unsectioned(Settings):
        new_knob: int = Field(default=1, description="A new knob.")

    with pytest.raises(ConfigDocError, match="NEW_KNOB has no documented section"):
        render(_doc_text(), Unsectioned)


def test_an_unknown_section_fails() -> None:
    class Misfiled(Settings):
        new_knob: int = Field(
            default=1, description="A new knob.", json_schema_extra={"section": "elsewhere"}
        )

    with pytest.raises(ConfigDocError, match="NEW_KNOB has no documented section"):
        render(_doc_text(), Misfiled)


def test_a_section_without_a_block_fails() -> None:
    text = _doc_text()
    start = text.index("<!-- settings:observability -->")
    end = text.index("<!-- /settings -->", start) + len("<!-- /settings -->")
    with pytest.raises(
        ConfigDocError, match="no <!-- settings:SECTION --> block for observability"
    ):
        render(text[:start] + text[end:])


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("<!-- settings:nowhere -->\n<!-- /settings -->\n", "names no section"),
        ("<!-- settings:identity -->\nunclosed\n", "unpaired or malformed"),
    ],
)
def test_bad_markers_fail(template: str, message: str) -> None:
    with pytest.raises(ConfigDocError, match=message):
        render(_doc_text() + template)


def test_a_repeated_block_fails() -> None:
    with pytest.raises(ConfigDocError, match="appears twice"):
        render(_doc_text() + "<!-- settings:identity -->\n<!-- /settings -->\n")


def test_check_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(_doc_text().replace("HS256 key for JWTs", "A key"), encoding="utf-8")
    assert command(True, stale) == 1
    out = capsys.readouterr().out
    assert "-| `SECRET_KEY` | — (required by the gateway) | A key" in out
    assert "is out of date: run `rag config-doc`" in out

    assert command(False, stale) == 0
    assert stale.read_text(encoding="utf-8") == _doc_text()
    assert command(True, stale) == 0


def test_cli_has_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config-doc", "--check"]) == 0
    assert "already" not in capsys.readouterr().out  # --check reached the command: no rewrite
