"""``rag conversations``: list, show, rename and delete your conversations
(continue one with ``rag chat --continue [ID]``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ragstream.client import conversations as api
from ragstream.client.errors import ClientError
from ragstream.client.session import Session, open_login
from ragstream.client.terminal import printable
from ragstream.commands.client import JsonFlag, UrlOption, err, out

conversations_app = typer.Typer(
    help="list, show, rename or delete your conversations", no_args_is_help=True
)


@conversations_app.command("list")
def list_command(
    url: UrlOption = None,
    as_json: JsonFlag = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="how many")] = 20,
) -> int:
    """Your conversations, the most recently active first."""
    with Session(open_login(url)) as session:
        found = api.list_conversations(session, limit)
    if as_json:
        print(json.dumps(found))
        return 0
    table = Table()
    for column in ("id", "title", "turns", "last activity"):
        table.add_column(column)
    for conversation in found:
        table.add_row(
            str(conversation["id"]),
            escape(printable(str(conversation["title"]))),
            str(conversation["turn_count"]),
            str(conversation["last_activity_at"])[:19],
        )
    out.print(table)
    return 0


@conversations_app.command("show")
def show_command(
    conversation_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> int:
    """A conversation's turns: each question and its answer."""
    with Session(open_login(url)) as session:
        conversation = api.get(session, conversation_id)
    if as_json:
        print(json.dumps(conversation))
        return 0
    out.print(f"[bold]{escape(printable(conversation['title']))}[/]")
    for turn in conversation["turns"]:
        out.print(f"\n[bold]{turn['turn']}. {escape(printable(turn['question']))}[/]")
        out.print(printable(turn["answer"]), markup=False)
    return 0


@conversations_app.command("rename")
def rename_command(
    conversation_id: Annotated[str, typer.Argument(metavar="ID")],
    title: Annotated[str, typer.Argument(help="the new title")],
    url: UrlOption = None,
) -> int:
    """Give a conversation a title of your own."""
    with Session(open_login(url)) as session:
        renamed = api.rename(session, conversation_id, title)
    out.print(f"renamed {escape(conversation_id)}: {escape(printable(renamed['title']))}")
    return 0


@conversations_app.command("delete")
def delete_command(
    ids: Annotated[list[str], typer.Argument(help="conversation ids")], url: UrlOption = None
) -> int:
    """Delete conversations with their turns and feedback."""
    failures = 0
    with Session(open_login(url)) as session:
        for conversation_id in ids:
            try:
                api.delete(session, conversation_id)
                out.print(f"deleted {escape(conversation_id)}")
            except ClientError as exc:
                err.print(f"rag: {escape(printable(str(exc)))}")
                failures += 1
    return 1 if failures else 0


def register(app: typer.Typer) -> None:
    app.add_typer(conversations_app, name="conversations")
