"""``rag groups``: your groups; for a tenant's admins, the tenant's groups
and their members. ``rag docs share``: who may read one of your documents."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from ragstream.client import groups as api
from ragstream.client.session import Session, open_login
from ragstream.client.terminal import printable
from ragstream.commands.client import JsonFlag, UrlOption, docs_app, out

groups_app = typer.Typer(
    help="your groups; admins: create, delete, and manage members", no_args_is_help=True
)
NameArgument = Annotated[str, typer.Argument(help="the group's name")]


@groups_app.command("list")
def list_command(
    url: UrlOption = None,
    as_json: JsonFlag = False,
    every: Annotated[
        bool, typer.Option("--all", help="every group of your tenant (admins)")
    ] = False,
) -> int:
    """The groups you are in (--all: every group of your tenant)."""
    with Session(open_login(url)) as session:
        found = api.in_tenant(session) if every else api.mine(session)
    if as_json:
        print(json.dumps(found))
        return 0
    table = Table()
    for column in ("name", "origin", "members", "id"):
        table.add_column(column)
    for group in found:
        name = escape(printable(group["name"]))
        table.add_row(name, group["origin"], str(group["members"]), group["id"])
    out.print(table)
    return 0


@groups_app.command("create")
def create_command(name: NameArgument, url: UrlOption = None) -> int:
    """A group of your tenant (admins)."""
    with Session(open_login(url)) as session:
        made = api.create(session, name)
    out.print(f"created group {escape(printable(made['name']))} ({made['id']})")
    return 0


@groups_app.command("delete")
def delete_command(name: NameArgument, url: UrlOption = None) -> int:
    """Delete a group: its members lose what was shared with it at once (admins)."""
    with Session(open_login(url)) as session:
        api.delete(session, name)
    out.print(f"deleted group {escape(printable(name))}")
    return 0


@groups_app.command("members")
def members_command(name: NameArgument, url: UrlOption = None, as_json: JsonFlag = False) -> int:
    """A group's members (admins)."""
    with Session(open_login(url)) as session:
        found = api.members(session, name)
    if as_json:
        print(json.dumps(found))
        return 0
    for member in found:
        origins = ", ".join(member["origins"])
        out.print(f"{escape(printable(member['username']))}  ({origins})")
    return 0


UsersArgument = Annotated[list[str], typer.Argument(help="usernames")]


@groups_app.command("add")
def add_command(name: NameArgument, usernames: UsersArgument, url: UrlOption = None) -> int:
    """Add users of your tenant to a group (admins)."""
    with Session(open_login(url)) as session:
        for username in usernames:
            api.set_member(session, name, username, member=True)
            out.print(f"added {escape(printable(username))} to {escape(printable(name))}")
    return 0


@groups_app.command("remove")
def remove_command(name: NameArgument, usernames: UsersArgument, url: UrlOption = None) -> int:
    """Remove users from a group: they lose what was shared with it at once (admins)."""
    with Session(open_login(url)) as session:
        for username in usernames:
            api.set_member(session, name, username, member=False)
            out.print(f"removed {escape(printable(username))} from {escape(printable(name))}")
    return 0


@docs_app.command("share")
def docs_share(
    document_id: Annotated[str, typer.Argument(help="the document's id")],
    url: UrlOption = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="share with this group (repeat)")
    ] = None,
    visibility: Annotated[
        Literal["private", "groups", "tenant"] | None,
        typer.Option("--visibility", help="private, groups (implied by --group) or tenant"),
    ] = None,
) -> int:
    """Who may read one of your documents: --group G (repeat), or --visibility tenant|private."""
    wanted = visibility or ("groups" if group else None)
    if wanted is None:
        raise typer.BadParameter("give --group or --visibility")
    with Session(open_login(url)) as session:
        doc = api.share(session, document_id, wanted, group or [])
    shared = ", ".join(doc.get("groups") or [])
    out.print(
        f"{escape(printable(doc['filename']))}: {doc['visibility']} {escape(printable(shared))}"
    )
    return 0


def register(app: typer.Typer) -> None:
    app.add_typer(groups_app, name="groups")
