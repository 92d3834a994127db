"""``rag sync``: register a folder to sync, follow its runs and failed
files, sync it now, remove it (tenant admins; docs/sources.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from ragstream.client import sources as api
from ragstream.client.session import Session, open_login
from ragstream.client.terminal import printable
from ragstream.commands.client import JsonFlag, UrlOption, out

sync_app = typer.Typer(
    help="folder sync (admins): add a folder, see its status and failed files, run, remove",
    no_args_is_help=True,
)


def _meta(entries: list[str]) -> dict[str, str]:
    pairs = [entry.partition("=") for entry in entries]
    if any(not sep for _, sep, _ in pairs):
        raise typer.BadParameter("--meta takes key=value")
    return {key: value for key, _, value in pairs}


@sync_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="the source's name, unique in your tenant")],
    path: Annotated[str, typer.Argument(help="an absolute folder path under SYNC_ROOTS")],
    url: UrlOption = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="only files matching (repeat)")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="never files matching (repeat)")
    ] = None,
    max_bytes: Annotated[
        int | None, typer.Option("--max-bytes", min=1, help="skip larger files")
    ] = None,
    visibility: Annotated[
        Literal["tenant", "groups", "private"],
        typer.Option("--visibility", help="of its documents (--group implies groups)"),
    ] = "tenant",
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="share its documents with this group (repeat)"),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="on every document")] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="key=value on every document")
    ] = None,
    interval: Annotated[
        int | None, typer.Option("--interval", min=10, help="seconds between runs")
    ] = None,
    as_json: JsonFlag = False,
) -> int:
    """Register a folder; a sync worker runs it at once, then every --interval."""
    body: dict[str, Any] = {
        "name": name,
        "path": path,
        "include": include or [],
        "exclude": exclude or [],
        "visibility": "groups" if group else visibility,
        "groups": group or [],
        "tags": tag or [],
        "meta": _meta(meta or []),
    }
    if max_bytes is not None:
        body["max_bytes"] = max_bytes
    if interval is not None:
        body["interval_seconds"] = interval
    with Session(open_login(url)) as session:
        added = api.add(session, body)
    if as_json:
        print(json.dumps(added))
    else:
        out.print(f"added source {escape(added['name'])} ({added['id']}): {escape(added['path'])}")
    return 0


def _run_line(run: dict[str, Any] | None) -> str:
    if run is None:
        return "never"
    counts = ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
    if run["outcome"] == "running":
        return f"running: {run['files_done']}/{run['files_total']} files ({counts})"
    when = str(run["finished_at"])[:19]
    error = f": {run['error']}" if run["error"] else ""
    return f"{run['outcome']} at {when}{error} ({counts or 'nothing to do'})"


def _table(found: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("name", "path", "state", "files", "last run"):
        table.add_column(column)
    for source in found:
        files = ", ".join(f"{k} {v}" for k, v in sorted(source["files"].items()))
        table.add_row(
            escape(source["name"]),
            escape(printable(source["path"])),
            source["state"],
            files or "none yet",
            escape(_run_line(source["current_run"] or source["last_run"])),
        )
    return table


def _detail(source: dict[str, Any]) -> None:
    out.print(f"{escape(source['name'])}: {escape(printable(source['path']))} ({source['state']})")
    if source["current_run"]:
        out.print(f"  now: {escape(_run_line(source['current_run']))}")
    out.print(f"  last run: {escape(_run_line(source['last_run']))}")
    out.print(f"  next run: {str(source['next_run_at'])[:19]}")
    for problem in source["problems"]:
        where = escape(printable(problem["path"]))
        out.print(f"  {problem['status']}: {where}: {escape(printable(problem['reason']))}")


@sync_app.command("status")
def status_command(
    name: Annotated[str | None, typer.Argument(help="one source, with its failed files")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> int:
    """Every source's state and last run; with NAME, its failed files and why."""
    with Session(open_login(url)) as session:
        found: Any = api.by_name(session, name) if name else api.list_all(session)
    if as_json:
        print(json.dumps(found))
    elif name:
        _detail(found)
    else:
        out.print(_table(found))
    return 0


@sync_app.command("run")
def run_command(name: Annotated[str, typer.Argument()], url: UrlOption = None) -> int:
    """Sync NAME now (after the run going on, if any)."""
    with Session(open_login(url)) as session:
        api.run(session, api.by_name(session, name)["id"])
    out.print(f"source {escape(name)} is due now")
    return 0


@sync_app.command("remove")
def remove_command(
    name: Annotated[str, typer.Argument()],
    url: UrlOption = None,
    keep_documents: Annotated[
        bool, typer.Option("--keep-documents", help="keep its documents (default: deleted)")
    ] = False,
) -> int:
    """Remove NAME; a sync worker deletes its documents (unless kept), then the source."""
    with Session(open_login(url)) as session:
        api.remove(session, api.by_name(session, name)["id"], keep_documents=keep_documents)
    kept = "kept" if keep_documents else "being deleted"
    out.print(f"source {escape(name)} is being removed; its documents are {kept}")
    return 0


def register(app: typer.Typer) -> None:
    app.add_typer(sync_app, name="sync")
