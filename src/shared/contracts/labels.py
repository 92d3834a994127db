"""Tags and metadata on documents, and the filters that search by them.

A document carries up to ``MAX_TAGS`` tags and ``MAX_META`` metadata
entries (string keys to string values), bounded so that they fit in every
chunk's Chroma metadata and BM25 row without weighing on either. The same
bounds apply wherever they come in: an upload's form fields, a PATCH, a
filter.

A ``Filters`` only ever narrows a search: every clause is ANDed with the
caller's reader filter inside the store's own query (Chroma's ``where``, the
BM25 SQL), so no filter can show a passage the caller could not find
without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

MAX_TAGS = 20
MAX_META = 20
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,63}$"
META_KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
META_VALUE_MAX = 256
# Printable: no control characters (shown in lists and logs; no NUL for
# PostgreSQL), something besides spaces.
META_VALUE_PATTERN = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"

# No control characters (and so no NUL, which PostgreSQL's text refuses).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
MetaKey = Annotated[str, StringConstraints(pattern=META_KEY_PATTERN)]
MetaValue = Annotated[
    str, StringConstraints(min_length=1, max_length=META_VALUE_MAX, pattern=META_VALUE_PATTERN)
]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
# additionalProperties false: the key pattern is a patternProperties, which
# alone would let a schema reader think any other key (with any value) fits.
Meta = Annotated[
    dict[MetaKey, MetaValue],
    Field(max_length=MAX_META, json_schema_extra={"additionalProperties": False}),
]

TAG_RULE = (
    f"at most {MAX_TAGS} tags, each 1-64 characters of letters, digits and . _ : / + -"
    " (starting with a letter or digit)"
)
META_RULE = (
    f"at most {MAX_META} entries; keys 1-64 characters of letters, digits and _ . -"
    f" (starting with a letter), values 1-{META_VALUE_MAX} printable characters"
)


class Filters(BaseModel):
    """Which of the caller's passages a search may find; every field set
    must hold (AND). Unset fields do not filter."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    tags_any: Tags | None = Field(
        default=None, min_length=1, description="Documents with at least one of these tags"
    )
    tags_all: Tags | None = Field(
        default=None, min_length=1, description="Documents with every one of these tags"
    )
    meta: Meta | None = Field(
        default=None,
        min_length=1,
        description="Documents whose metadata has each of these key: value pairs (equality)",
    )
    filename: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=PRINTABLE,
        description="Documents of this file name",
    )
    content_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=PRINTABLE,
        description="Documents of this Content-Type (as listed: `text/markdown`, ...)",
    )
    uploaded_after: AwareDatetime | None = Field(
        default=None, description="Documents uploaded at or after this time"
    )
    uploaded_before: AwareDatetime | None = Field(
        default=None, description="Documents uploaded before this time"
    )

    def key(self) -> str:
        """A canonical form, for the answer cache's key: equal filters give
        equal keys whatever the order they were written in."""
        data = self.model_dump(mode="json", exclude_none=True)
        for name in ("tags_any", "tags_all"):
            if name in data:
                data[name] = sorted(set(data[name]))
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def tags_from_form(values: Iterable[str]) -> list[str]:
    """Tags as an upload's form fields carry them: repeated ``tags`` fields,
    each one tag, several separated by commas, or a JSON array (what some
    generated clients send for a list). Blank items are skipped; duplicates
    kept once, in order. Raises ``ValueError`` with the reason."""
    tags: list[str] = []
    for value in values:
        text = value.strip()
        items = _json_list(text) if text.startswith("[") else text.split(",")
        for item in items:
            item = item.strip()
            if item and item not in tags:
                tags.append(item)
    return tags


def meta_from_form(values: Iterable[str]) -> dict[str, str]:
    """Metadata as an upload's form fields carry it: repeated ``meta``
    fields, each ``key=value`` or a JSON object of string values (or a JSON
    array of ``key=value`` strings: a generated client's list). Raises
    ``ValueError`` with the reason."""
    meta: dict[str, str] = {}
    for value in values:
        text = value.strip()
        if text.startswith("{"):
            meta.update(_json_object(text))
            continue
        for pair in _json_list(text, "meta") if text.startswith("[") else [text]:
            if not pair.strip():
                continue
            key, sep, item = pair.partition("=")
            if not sep:
                raise ValueError(f"meta {pair[:80]!r}: expected key=value or a JSON object")
            meta[key.strip()] = item.strip()
    return meta


def _json_list(text: str, field: str = "tags") -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{field}: not a JSON array ({exc.msg})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field}: a JSON array must hold strings only")
    return value


def _json_object(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"meta: not a JSON object ({exc.msg})") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("meta: a JSON object's values must be strings")
    return value


class Labels(BaseModel):
    """A document's tags and metadata, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    tags: Tags = Field(default_factory=list)
    meta: Meta = Field(default_factory=dict)
