"""How a request's visibility and groups combine into a share (before any
database is asked): groups imply visibility ``groups``, which needs them."""

from __future__ import annotations

import pytest

from gateway.routes.documents import _group_names, _share
from shared.errors import InvalidInput


def test_groups_imply_groups_visibility_and_plain_visibilities_pass() -> None:
    assert _share(None, ["staff"]).visibility == "groups"
    assert _share("groups", ["a", "b"]).names == ["a", "b"]
    assert _share("tenant", None).visibility == "tenant"
    assert _share(None, None).visibility == "private"


@pytest.mark.parametrize(
    ("visibility", "names"),
    [("groups", None), ("groups", []), ("tenant", ["staff"]), ("private", ["staff"])],
)
def test_groups_visibility_without_groups_or_groups_with_another_visibility_is_400(
    visibility: str, names: list[str] | None
) -> None:
    with pytest.raises(InvalidInput):
        _share(visibility, names)  # type: ignore[arg-type]


def test_an_uploads_group_fields_read_like_tags() -> None:
    assert _group_names(["staff, finance", "ops"]) == ["staff", "finance", "ops"]
    assert _group_names(['["a b", "c"]']) == ["a b", "c"]
    with pytest.raises(InvalidInput):
        _group_names(["x" * 101])
