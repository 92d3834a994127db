"""``rag groups``: the caller's groups, and (for a tenant's admins) the
tenant's groups and their members; ``rag docs share``: share a document."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ragstream.client.errors import ClientError
from ragstream.client.session import Session, expect


def mine(session: Session) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = expect(session.request("GET", "/api/groups"), 200)
    return found


def in_tenant(session: Session) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = expect(session.request("GET", "/api/admin/groups"), 200)
    return found


def create(session: Session, name: str) -> dict[str, Any]:
    made: dict[str, Any] = expect(
        session.request("POST", "/api/admin/groups", json={"name": name}), 201
    )
    return made


def group_id(session: Session, name: str) -> str:
    """The id of the tenant's group ``name`` (ignoring case)."""
    for group in in_tenant(session):
        if group["name"].lower() == name.strip().lower():
            return str(group["id"])
    raise ClientError(f"your organisation has no group named {name!r}")


def user_id(session: Session, username: str) -> str:
    users: list[dict[str, Any]] = expect(session.request("GET", "/api/admin/users"), 200)
    for user in users:
        if user["username"] == username:
            return str(user["id"])
    raise ClientError(f"your organisation has no user named {username!r}")


def delete(session: Session, name: str) -> None:
    expect(session.request("DELETE", f"/api/admin/groups/{group_id(session, name)}"), 204)


def members(session: Session, name: str) -> list[dict[str, Any]]:
    path = f"/api/admin/groups/{group_id(session, name)}/members"
    found: list[dict[str, Any]] = expect(session.request("GET", path), 200)
    return found


def set_member(session: Session, name: str, username: str, *, member: bool) -> None:
    group, user = group_id(session, name), user_id(session, username)
    method = "PUT" if member else "DELETE"
    expect(session.request(method, f"/api/admin/groups/{group}/members/{user}"), 204)


def share(session: Session, document_id: str, visibility: str, groups: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"visibility": visibility}
    if groups:
        body["groups"] = groups
    path = f"/api/documents/{quote(document_id, safe='')}"
    shared: dict[str, Any] = expect(session.request("PATCH", path, json=body), 200)
    return shared
