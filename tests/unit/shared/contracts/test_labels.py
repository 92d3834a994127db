"""Tags, metadata and filters: what an upload's form fields may say, what
is refused, and how a filter reads in Chroma's ``where``."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from pydantic import ValidationError

from shared.contracts.labels import (
    MAX_META,
    MAX_TAGS,
    Filters,
    Labels,
    meta_from_form,
    tags_from_form,
)
from shared.storage.vectorstore import _label_change, _readable, filter_clauses, label_metadata


def test_tags_come_repeated_comma_separated_or_as_a_json_array() -> None:
    assert tags_from_form(["finance", "2026, q3", '["hr", "finance"]', " "]) == [
        "finance",
        "2026",
        "q3",
        "hr",
    ]
    with pytest.raises(ValueError, match="JSON array"):
        tags_from_form(["[1, 2]"])


def test_metadata_comes_as_key_value_pairs_or_a_json_object() -> None:
    assert meta_from_form(["team=infra", '{"region": "eu", "team": "data"}', "note=a=b"]) == {
        "team": "data",
        "region": "eu",
        "note": "a=b",
    }
    assert meta_from_form(['["a=1", "b=2"]']) == {"a": "1", "b": "2"}
    with pytest.raises(ValueError, match="key=value"):
        meta_from_form(["team"])
    with pytest.raises(ValueError, match="values must be strings"):
        meta_from_form(['{"n": 1}'])


@pytest.mark.parametrize(
    "labels",
    [
        {"tags": ["has space"]},
        {"tags": ["-leading"]},
        {"tags": ["x" * 65]},
        {"tags": [f"t{n}" for n in range(MAX_TAGS + 1)]},
        {"meta": {"1key": "v"}},
        {"meta": {"key": ""}},
        {"meta": {"key": "   "}},
        {"meta": {"key": "line\nbreak"}},
        {"meta": {"key": "x" * 257}},
        {"meta": {f"k{n}": "v" for n in range(MAX_META + 1)}},
    ],
)
def test_labels_out_of_bounds_are_refused(labels: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Labels.model_validate(labels)


def test_labels_within_bounds_pass() -> None:
    labels = Labels.model_validate(
        {"tags": ["finance", "2026-q3", "a/b:c+d"], "meta": {"team": "infra", "cost.centre": "42"}}
    )
    assert labels.tags == ["finance", "2026-q3", "a/b:c+d"]


def test_an_unknown_filter_is_refused_never_ignored() -> None:
    """Ignoring it would search wider than the caller asked."""
    with pytest.raises(ValidationError):
        Filters.model_validate_json('{"tag": ["a"]}')


def test_equal_filters_have_equal_cache_keys() -> None:
    one = Filters(tags_any=["b", "a"], meta={"x": "1", "y": "2"})
    two = Filters(tags_any=["a", "b", "a"], meta={"y": "2", "x": "1"})
    assert one.key() == two.key()
    assert one.key() != Filters(tags_all=["a", "b"]).key()


def test_a_filter_in_chromas_where_only_narrows_the_readers_filter() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    filters = Filters(
        tags_any=["a", "b"],
        tags_all=["c"],
        meta={"team": "infra"},
        filename="x.md",
        content_type="text/markdown",
        uploaded_after=after,
    )
    clauses = filter_clauses(filters)
    assert clauses == [
        {"$or": [{"tag:a": True}, {"tag:b": True}]},
        {"tag:c": True},
        {"meta:team": "infra"},
        {"filename": "x.md"},
        {"content_type": "text/markdown"},
        {"uploaded_at": {"$gte": after.timestamp()}},
    ]
    where = _readable(UUID(int=1), (), *clauses)
    # The reader's own filter is the first of the AND: nothing is ORed with it.
    assert list(where) == ["$and"]
    assert where["$and"][0] == {
        "$or": [{"user_id": "00000000-0000-0000-0000-000000000001"}, {"visibility": "tenant"}]
    }
    assert filter_clauses(Filters(tags_any=["only"])) == [{"tag:only": True}]


def test_a_label_change_removes_what_the_document_no_longer_has() -> None:
    current = {"user_id": "u", "tag:old": True, "tag:kept": True, "meta:team": "a"}
    wanted = label_metadata(["kept", "new"], {"team": "b"})
    assert _label_change(current, wanted) == {"tag:old": None, "tag:new": True, "meta:team": "b"}
    assert _label_change({"user_id": "u", **wanted}, wanted) == {}
