"""Client commands over the HTTP API: login, logout, ingest, chat, search, docs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragstream.client import auth, credentials, ingest
from ragstream.client import chat as chatting
from ragstream.client import conversations as conversations_api
from ragstream.client import documents as docs_api
from ragstream.client import search as searching
from ragstream.client.errors import ClientError
from ragstream.client.session import Session, open_login
from ragstream.client.terminal import printable
from shared.formats import SUPPORTED_SUFFIXES

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="the gateway (default: the login's, else $RAG_URL, else local)"),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="one JSON document on stdout")]
TagOption = Annotated[
    list[str] | None, typer.Option("--tag", help="only documents with this tag (repeat: any)")
]
AllTagsFlag = Annotated[bool, typer.Option("--all-tags", help="only documents with every --tag")]
MetaOption = Annotated[
    list[str] | None,
    typer.Option("--meta", help="only documents with this metadata key=value (repeat: all)"),
]

# Piped output is not wrapped at 80 columns: a row stays one line for grep.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 250)
err = Console(stderr=True, highlight=False)
docs_app = typer.Typer(help="list, share or delete your documents", no_args_is_help=True)

# Where the answer begins on a terminal, to clear it from when it restarts.
SAVE_CURSOR = "\x1b7"
RESTORE_AND_CLEAR = "\x1b8\x1b[J"
RESTARTED = "[the answer was interrupted and starts again]"


def login(
    url: UrlOption = None,
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    sso: Annotated[
        bool,
        typer.Option(
            "--sso", help="sign in at your organisation's provider (device code), no password"
        ),
    ] = False,
) -> int:
    """Sign in and keep the session in your config folder (mode 0600)."""
    target = credentials.resolve_url(url, credentials.load())
    if sso:
        signed_in = auth.login_sso(target, lambda line: out.print(escape(line)))
        out.print(f"logged in to {escape(signed_in.url)} as {escape(signed_in.username)}")
        return 0
    name = username or typer.prompt("username")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True)
    signed_in = auth.login(target, name, password)
    out.print(f"logged in to {escape(signed_in.url)} as {escape(signed_in.username)}")
    return 0


def logout() -> int:
    """Revoke the session and forget it."""
    out.print(escape(auth.logout()))
    return 0


def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="files and folders (recursive)")],
    url: UrlOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for indexing")] = 600.0,
    bulk: Annotated[
        bool,
        typer.Option("--bulk", help="an import: indexed after your tenant's other uploads"),
    ] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="tag every uploaded document (repeat)")
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="metadata key=value on every uploaded document (repeat)"),
    ] = None,
) -> int:
    """Upload documents and wait until each is indexed or failed."""
    plan = ingest.collect(paths)
    if not plan.items:
        raise ClientError(f"nothing to upload (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    with Session(open_login(url)) as session, _progress() as progress:
        task = progress.add_task("uploading", total=len(plan.items))
        for item in plan.items:
            progress.update(task, description=f"uploading {escape(item.shown)}")
            ingest.upload(session, item, bulk=bulk, tags=tag or (), meta=meta or ())
            if item.status == "refused":
                progress.advance(task)
        progress.update(task, description="indexing")
        ingest.wait(session, plan.items, timeout, lambda _: progress.advance(task))
    out.print(_summary(plan))
    failed = sum(not item.ok for item in plan.items)
    if plan.skipped:
        err.print(f"skipped {len(plan.skipped)} files of unsupported types")
    return 1 if failed else 0


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _summary(plan: ingest.Plan) -> Table:
    table = Table(title="ingest")
    for column in ("file", "status", "chunks", "document id / reason"):
        table.add_column(column)
    for item in plan.items:
        colour = "green" if item.ok else "red"
        note = item.detail if not item.ok else (item.document_id or "")
        table.add_row(
            escape(item.shown),
            f"[{colour}]{item.status}[/]",
            str(item.chunks) if item.ok else "",
            escape(printable(note or (item.document_id or ""))),
        )
    ok = sum(item.ok for item in plan.items)
    table.caption = f"{ok} indexed, {len(plan.items) - ok} not"
    return table


def chat(
    question: Annotated[
        list[str],
        typer.Argument(
            help="the question; with --continue, optionally a conversation id before it",
            metavar="[ID] QUESTION",
        ),
    ],
    url: UrlOption = None,
    as_json: JsonFlag = False,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="passages to use")] = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", help="continue this conversation id")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--continue",
            help="continue a conversation: the id given before the question, else your last",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="seconds without a reply before the gateway gives up"),
    ] = None,
    tag: TagOption = None,
    all_tags: AllTagsFlag = False,
    meta: MetaOption = None,
) -> int:
    """Ask a question; the answer streams, then its numbered sources (or, when
    the documents do not answer it, the closest passages, not cited)."""
    text, given = _question_and_id(question, resume)
    conversation = conversation or given
    filters = searching.filters(tag or [], all_tags, meta or [])

    terminal = sys.stdout.isatty()
    if terminal and not as_json:
        sys.stdout.write(SAVE_CURSOR)

    def show(text: str) -> None:
        if not as_json:
            sys.stdout.write(printable(text))
            sys.stdout.flush()

    def restart() -> None:
        """The answer starts over: what was shown of it goes (a pipe, which
        cannot take text back, gets a line saying so)."""
        if as_json:
            return
        sys.stdout.write(RESTORE_AND_CLEAR if terminal else f"\n{RESTARTED}\n")
        sys.stdout.flush()

    with Session(open_login(url)) as session:
        if resume and conversation is None:
            conversation = conversations_api.last(session)
        answer = chatting.ask(
            session, text, top_k, conversation, show, timeout, restart, filters=filters or None
        )
    if as_json:
        print(json.dumps(answer.as_json()))
        return 1 if answer.error else 0
    print()
    if answer.error:
        raise ClientError(f"the answer did not complete: {answer.error}")
    _print_sources(answer.sources, answer.grounded)
    if answer.conversation_id:
        turn = f", turn {answer.turn}" if answer.turn else ""
        err.print(f"[dim]conversation {answer.conversation_id}{turn}[/]")
    return 0


def _question_and_id(words: list[str], resume: bool) -> tuple[str, str | None]:
    """``rag chat [--continue [ID]] QUESTION``: (the question, the id given)."""
    if len(words) == 1:
        return words[0], None
    if len(words) == 2 and resume and _is_uuid(words[0]):
        return words[1], words[0]
    raise ClientError(
        "one question, in quotes (and with --continue, a conversation id before it)",
        exit_code=2,
    )


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _print_sources(sources: list[dict[str, Any]], grounded: bool = True) -> None:
    """The numbered sources; for an answer not found in the documents, the
    closest passages instead, which the answer does not cite."""
    if not sources:
        return
    out.print("\n[bold]Sources[/]" if grounded else "\n[bold]Closest passages (not cited)[/]")
    for source in sources:
        where = f", page {source['page']}" if source.get("page") else ""
        section = f" — {source['section']}" if source.get("section") else ""
        line = f"  [{source['n']}] {source['filename']}{where}{section}"
        out.print(printable(line), markup=False)


_STAGES = ("dense", "bm25", "fused", "reranker", "reranked_fused")


def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="passages wanted")] = None,
    retrieval: Annotated[
        str | None, typer.Option("--retrieval", help="dense, lexical or hybrid")
    ] = None,
    reranking: Annotated[
        str | None, typer.Option("--reranking", help="none, cross-encoder, mmr or llm")
    ] = None,
    document: Annotated[
        list[str] | None, typer.Option("--document", help="search only this document id")
    ] = None,
    tag: TagOption = None,
    all_tags: AllTagsFlag = False,
    meta: MetaOption = None,
) -> int:
    """Your passages for a query, ranked, with each stage's score; no answer."""
    filters = searching.filters(tag or [], all_tags, meta or [])
    with Session(open_login(url)) as session:
        passages = searching.search(
            session,
            query,
            top_k=top_k,
            retrieval=retrieval,
            reranking=reranking,
            document_ids=document or None,
            extra={"filters": filters} if filters else None,
        )
    if as_json:
        print(json.dumps(passages))
        return 0
    if not passages:
        err.print("no passages")
        return 0
    for p in passages:
        where = f", page {p['page']}" if p.get("page") else ""
        section = f" — {p['section']}" if p.get("section") else ""
        scores = "  ".join(
            f"{name} {p['scores'][name]:.4g}"
            for name in _STAGES
            if p["scores"].get(name) is not None
        )
        out.print(printable(f"{p['rank']:>2}. {p['filename']}{where}{section}"), markup=False)
        out.print(printable(f"    {scores}"), markup=False, style="dim")
        snippet = " ".join(p["text"].split())
        out.print(printable(f"    {snippet[:200]}"), markup=False)
    return 0


@docs_app.command("list")
def docs_list(url: UrlOption = None, as_json: JsonFlag = False) -> int:
    """Your documents and those shared with you (tenant, groups), newest first."""
    with Session(open_login(url)) as session:
        found = docs_api.list_documents(session)
    if as_json:
        print(json.dumps(found))
        return 0
    table = Table()
    for column in ("id", "file", "status", "chunks", "size", "visibility", "created"):
        table.add_column(column)
    for doc in found:
        name = escape(printable(str(doc["filename"])))
        table.add_row(
            str(doc["id"]),
            name,
            str(doc["status"]),
            str(doc["chunks"]),
            str(doc["size_bytes"]),
            escape(printable(_visibility(doc))),
            str(doc["created_at"])[:19],
        )
    out.print(table)
    return 0


def _visibility(doc: dict[str, Any]) -> str:
    """``private``, ``tenant``, or ``groups: a, b``."""
    shared = doc.get("groups") or []
    visibility = str(doc.get("visibility", ""))
    return f"{visibility}: {', '.join(shared)}" if shared else visibility


@docs_app.command("delete")
def docs_delete(
    ids: Annotated[list[str], typer.Argument(help="document ids")], url: UrlOption = None
) -> int:
    """Delete documents (yours only) with their passages."""
    failures = 0
    with Session(open_login(url)) as session:
        for document_id in ids:
            try:
                docs_api.delete(session, document_id)
                out.print(f"deleted {escape(document_id)}")
            except ClientError as exc:
                err.print(f"rag: {escape(printable(str(exc)))}")
                failures += 1
    return 1 if failures else 0


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("ingest")(ingest_command)
    app.command("chat")(chat)
    app.command("search")(search)
    app.add_typer(docs_app, name="docs")
