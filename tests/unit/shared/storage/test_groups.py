"""The pure parts of groups: names, the claim's names, the reader's SQL
clause, and the reader's filter in Chroma (a where clause and the same rule
applied to one chunk's metadata)."""

from __future__ import annotations

import uuid

import pytest

from shared.errors import InvalidInput
from shared.storage.groups import MAX_CLAIM_GROUPS, clean_name, readable_clause, valid_claim_names
from shared.storage.vectorstore import (
    GROUP_KEY,
    _label_change,
    _may_read,
    _readable,
    document_fields,
)


def test_a_group_name_is_trimmed_and_refused_when_blank_long_or_with_control_characters() -> None:
    assert clean_name("  Finance team ") == "Finance team"
    for bad in ("", "   ", "x" * 101, "a\nb", "tab\there", "nul\x00"):
        with pytest.raises(InvalidInput):
            clean_name(bad)


def test_the_claims_names_are_cleaned_deduplicated_ignoring_case_sorted_and_bounded() -> None:
    assert valid_claim_names(["staff", "Staff", " rag-admins ", "", "bad\x01"]) == [
        "rag-admins",
        "staff",
    ]
    many = [f"g{n:04d}" for n in range(MAX_CLAIM_GROUPS + 50)]
    assert valid_claim_names(reversed(many)) == many[:MAX_CLAIM_GROUPS]


def test_the_sql_reader_clause_needs_the_tenant_and_then_owner_tenant_share_or_membership() -> None:
    clause = readable_clause("d")
    assert clause.startswith("d.tenant_id = $1 AND (")
    # The membership is the caller's ($2), of a group the document itself is shared with.
    assert "dg.document_id = d.id AND gm.user_id = $2" in clause
    assert "d.visibility = 'groups' AND EXISTS" in clause
    assert clause.count("(") == clause.count(")")


USER, OTHER = uuid.UUID(int=1), uuid.UUID(int=2)
G1, G2, G3 = (uuid.UUID(int=n) for n in (11, 12, 13))


def _meta(owner: uuid.UUID, visibility: str, *groups: uuid.UUID) -> dict[str, object]:
    return {
        "user_id": str(owner),
        "visibility": visibility,
        **{GROUP_KEY + str(g): True for g in groups},
    }


def test_one_chunk_is_readable_by_its_owner_the_tenant_when_shared_or_its_groups_members() -> None:
    assert _may_read(USER, [], _meta(USER, "private"))
    assert _may_read(USER, [], _meta(OTHER, "tenant"))
    assert not _may_read(USER, [G1], _meta(OTHER, "private", G1))  # stale keys: not shared
    assert _may_read(USER, [G2, G1], _meta(OTHER, "groups", G1))
    assert not _may_read(USER, [G2], _meta(OTHER, "groups", G1))
    assert not _may_read(USER, [], _meta(OTHER, "groups", G1))
    # Only a True key counts: a value a writer never sets is not membership.
    assert not _may_read(USER, [G1], {**_meta(OTHER, "groups"), GROUP_KEY + str(G1): "yes"})


def test_the_chroma_reader_filter_adds_the_callers_groups_and_only_narrows_with_filters() -> None:
    alone = _readable(USER, [])
    assert alone == {"$or": [{"user_id": str(USER)}, {"visibility": "tenant"}]}
    one = _readable(USER, [G1])
    assert one["$or"][2] == {"$and": [{"visibility": "groups"}, {GROUP_KEY + str(G1): True}]}
    two = _readable(USER, [G2, G1], {"tag:x": True})
    assert list(two) == ["$and"]
    reader, narrower = two["$and"]
    assert narrower == {"tag:x": True}
    assert reader["$or"][2]["$and"][1] == {
        "$or": [{GROUP_KEY + str(G1): True}, {GROUP_KEY + str(G2): True}]
    }


def test_a_chunks_group_keys_follow_the_document_and_stale_ones_are_removed() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 1, tzinfo=UTC)
    before = document_fields("text/plain", at, [], {}, [G1, G2])
    assert before[GROUP_KEY + str(G1)] is True and before[GROUP_KEY + str(G2)] is True
    after = document_fields("text/plain", at, [], {}, [G2, G3])
    change = _label_change({"user_id": "u", **before}, after)
    assert change == {GROUP_KEY + str(G1): None, GROUP_KEY + str(G3): True}
    assert _label_change({"user_id": "u", **after}, after) == {}
