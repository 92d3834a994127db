"""``rag feedback``: rate an answer (``up`` or ``down``), and, for a
tenant's admins, list or export the tenant's ratings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from ragstream.client import feedback as api
from ragstream.client.session import Session, open_login
from ragstream.client.terminal import printable
from ragstream.commands.client import JsonFlag, UrlOption, out

feedback_app = typer.Typer(
    help="rate an answer (up, down); admins: list or export the tenant's ratings",
    no_args_is_help=True,
)
ConversationOption = Annotated[
    str | None,
    typer.Option("--conversation", help="the answer's conversation (default: your last)"),
]
TurnOption = Annotated[
    int | None,
    typer.Option("--turn", min=1, help="the answer's turn (default: the conversation's last)"),
]
CommentOption = Annotated[
    str | None, typer.Option("--comment", help="what was good or wrong (up to 2,000 characters)")
]
WrongOption = Annotated[
    int | None, typer.Option("--wrong-source", min=1, help="the number [n] of a wrong source")
]
RatingOption = Annotated[
    Literal["up", "down"] | None, typer.Option("--rating", help="only up, or only down")
]


def _rate(
    rating: str,
    url: str | None,
    conversation: str | None,
    turn: int | None,
    comment: str | None,
    wrong_source: int | None,
) -> int:
    with Session(open_login(url)) as session:
        if turn is None:
            conversation, turn = api.last_turn(session, conversation)
        elif conversation is None:
            conversation, _ = api.last_turn(session, None)
        api.rate(session, conversation, turn, rating, comment, wrong_source)
    out.print(f"rated turn {turn} of conversation {escape(conversation)}: {rating}")
    return 0


@feedback_app.command("up")
def up(
    url: UrlOption = None,
    conversation: ConversationOption = None,
    turn: TurnOption = None,
    comment: CommentOption = None,
    wrong_source: WrongOption = None,
) -> int:
    """A good answer (your last one, unless --conversation / --turn say which)."""
    return _rate("up", url, conversation, turn, comment, wrong_source)


@feedback_app.command("down")
def down(
    url: UrlOption = None,
    conversation: ConversationOption = None,
    turn: TurnOption = None,
    comment: CommentOption = None,
    wrong_source: WrongOption = None,
) -> int:
    """A bad answer (your last one, unless --conversation / --turn say which)."""
    return _rate("down", url, conversation, turn, comment, wrong_source)


@feedback_app.command("list")
def list_command(
    url: UrlOption = None,
    as_json: JsonFlag = False,
    rating: RatingOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="how many")] = 100,
) -> int:
    """Your tenant's ratings, newest first (admins only)."""
    with Session(open_login(url)) as session:
        found = api.list_feedback(session, rating, limit)
    if as_json:
        print(json.dumps(found))
        return 0
    table = Table()
    for column in ("when", "user", "rating", "question", "comment", "wrong source"):
        table.add_column(column)
    for entry in found:
        wrong = entry.get("wrong_source_ref") or {}
        table.add_row(
            str(entry["updated_at"])[:19],
            escape(printable(entry["username"])),
            entry["rating"],
            escape(printable(entry["question"][:80])),
            escape(printable(entry["comment"] or "")),
            escape(printable(f"[{entry['wrong_source']}] {wrong.get('filename', '')}"))
            if entry["wrong_source"]
            else "",
        )
    out.print(table)
    return 0


@feedback_app.command("export")
def export_command(
    url: UrlOption = None,
    fmt: Annotated[Literal["csv", "json"], typer.Option("--format", help="csv or json")] = "csv",
    rating: RatingOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here (default: stdout)")
    ] = None,
) -> int:
    """Every rating of your tenant, as CSV or JSON (admins only)."""
    with Session(open_login(url)) as session:
        data = api.export(session, fmt, rating)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        out.print(f"wrote {escape(str(output))}")
    return 0


def register(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")
