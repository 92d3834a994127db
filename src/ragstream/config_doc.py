"""``rag config-doc``: the settings tables of docs/configuration.md, generated
from ``shared.config.Settings``.

Each table sits between ``<!-- settings:SECTION -->`` and ``<!-- /settings -->``
and is rewritten from the fields whose ``json_schema_extra`` names that section
(``shared.config._doc``): one row per field, its description as the meaning.
Everything outside the markers is hand-written and left alone.
"""

from __future__ import annotations

import difflib
import enum
import re
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from ragstream.errors import CliError
from shared.config import DOC_SECTIONS, Settings

DOC_PATH = Path("docs/configuration.md")
HEADER = "| variable | default | meaning |\n| --- | --- | --- |"
# Markers are whole lines, so prose may mention them.
_BLOCK = re.compile(
    r"^(?P<open><!-- settings:(?P<section>\S*) -->\n)(?P<body>.*?)^(?P<close><!-- /settings -->)$",
    re.DOTALL | re.MULTILINE,
)
_MARKER = re.compile(r"^<!-- /?settings.*$", re.MULTILINE)


class ConfigDocError(CliError):
    """The settings or the template cannot make a complete, unambiguous doc."""


def variable(name: str, field: FieldInfo) -> str:
    """The environment variable a field is read from."""
    alias = field.validation_alias or field.alias
    if alias is not None and not isinstance(alias, str):
        raise ConfigDocError(f"{name}: only a plain string alias can be documented")
    return (alias or name).upper()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "doc_default" in extra:
        return str(extra["doc_default"])
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str | Path):
        return f"`{value}`"
    raise ConfigDocError(f"no doc_default for a default of type {type(value).__name__}")


def _section(name: str, field: FieldInfo) -> str:
    extra = field.json_schema_extra
    section = extra.get("section") if isinstance(extra, dict) else None
    if not isinstance(section, str) or section not in DOC_SECTIONS:
        raise ConfigDocError(
            f"{variable(name, field)} has no documented section: give it"
            f" json_schema_extra=_doc(SECTION), one of {', '.join(DOC_SECTIONS)}"
        )
    return section


def tables(settings: type[BaseSettings] = Settings) -> dict[str, str]:
    """Each section's markdown table, in field order; every field in exactly
    one, and each with a description, or ``ConfigDocError``."""
    rows: dict[str, list[str]] = {section: [] for section in DOC_SECTIONS}
    for name, field in settings.model_fields.items():
        section = _section(name, field)
        if not (field.description or "").strip():
            raise ConfigDocError(f"{variable(name, field)} has no description")
        rows[section].append(
            f"| `{variable(name, field)}` | {_cell(_default(field))}"
            f" | {_cell(field.description or '')} |"
        )
    return {section: "\n".join([HEADER, *lines]) for section, lines in rows.items() if lines}


def render(template: str, settings: type[BaseSettings] = Settings) -> str:
    """``template`` with every marked block refilled from ``settings``. Fails if a
    block names an unknown or repeated section, or a section with fields has no
    block, so no setting can go undocumented."""
    generated = tables(settings)
    seen: list[str] = []

    def fill(match: re.Match[str]) -> str:
        section = match["section"]
        if section not in generated:
            raise ConfigDocError(f"<!-- settings:{section} --> names no section with settings")
        if section in seen:
            raise ConfigDocError(f"<!-- settings:{section} --> appears twice")
        seen.append(section)
        return f"{match['open']}{generated[section]}\n{match['close']}"

    result = _BLOCK.sub(fill, template)
    stray = len(_MARKER.findall(template)) - 2 * len(seen)
    if stray:
        raise ConfigDocError("a settings marker is unpaired or malformed")
    missing = [section for section in generated if section not in seen]
    if missing:
        raise ConfigDocError("no <!-- settings:SECTION --> block for " + ", ".join(missing))
    return result


def diff(path: Path = DOC_PATH) -> list[str]:
    """How the file differs from what it should be (empty: up to date)."""
    current = path.read_text(encoding="utf-8")
    return list(
        difflib.unified_diff(
            current.splitlines(),
            render(current).splitlines(),
            fromfile=str(path),
            tofile=f"{path} (generated)",
            lineterm="",
        )
    )


def command(check: bool, path: Path = DOC_PATH) -> int:
    """Rewrite the file's tables, or with ``--check`` say how it is out of date."""
    if not path.is_file():
        raise CliError(f"{path} not found: run from the repository root")
    if not check:
        current = path.read_text(encoding="utf-8")
        updated = render(current)
        if updated != current:
            path.write_text(updated, encoding="utf-8")
        print(f"{path} {'updated' if updated != current else 'already up to date'}")
        return 0
    changes = diff(path)
    if changes:
        print("\n".join(changes))
        print(f"{path} is out of date: run `rag config-doc`")
    return 1 if changes else 0
