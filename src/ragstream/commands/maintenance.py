"""Operating a deployment: schemas, dlq, user, reconcile, config-doc, reindex.

``user create`` and ``reconcile`` live in their services (gateway, ingest),
imported inside the command that runs them, so the rest of ``rag`` loads
neither.

The commands that reach the infrastructure take ``--data-dir``: a local
stack's settings (``ragstream.stack_env``) fill what the environment leaves
unset, and the servers they need are checked first (``ragstream.dependencies``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragstream.dependencies import CHROMA, KAFKA, POSTGRES, connect
from ragstream.errors import CliError
from ragstream.stack_env import DEFAULT_DATA_DIR

StackDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="a local stack's folder (`rag up --data-dir`): its settings are used"
        " where the environment sets none",
    ),
]
Check = Annotated[bool, typer.Option("--check", help="exit 1 if the output is stale")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="only print what would go")]
Topics = Annotated[
    list[str] | None,
    typer.Option("--topic", help="source topic: ingest, chat, or a full name (default: both)"),
]

dlq_app = typer.Typer(help="list or replay dead letters", no_args_is_help=True)
user_app = typer.Typer(help="create users straight in the database", no_args_is_help=True)


def schemas(check: Check = False) -> int:
    """Write (or --check) schemas/."""
    from shared.contracts.schemas import check_schemas, write_schemas

    directory = Path("schemas")
    if not check:
        written = write_schemas(directory)
        print(f"wrote {len(written)} files to {directory}/")
        return 0
    drifted = check_schemas(directory)
    for name in drifted:
        print(f"{directory}/{name} is out of date: run `rag schemas`")
    return 1 if drifted else 0


def config_doc(check: Check = False) -> int:
    """Write (or --check) the settings tables of docs/configuration.md."""
    from ragstream.config_doc import command

    return command(check)


def reconcile(
    dry_run: DryRun = False,
    adopt_root: Annotated[
        bool,
        typer.Option(
            "--adopt-blob-root",
            help="first mark BLOB_DIR as this deployment's blob root (only once checked)",
        ),
    ] = False,
    data_dir: StackDir = DEFAULT_DATA_DIR,
) -> int:
    """Remove orphaned blobs and rows, once (exit 3: refused, nothing removed)."""
    connect(data_dir, POSTGRES, CHROMA)
    from ingest.reconciler import command

    return command(dry_run=dry_run, adopt_root=adopt_root)


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option("--username")],
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant's name")],
    admin: Annotated[bool, typer.Option("--admin", help="administers the tenant")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read it from stdin")
    ] = False,
    data_dir: StackDir = DEFAULT_DATA_DIR,
) -> int:
    """A user of a tenant (the tenant is created if new)."""
    connect(data_dir, POSTGRES)
    from gateway.identity.user_admin import command

    return command(username=username, tenant=tenant, admin=admin, password_stdin=password_stdin)


@dlq_app.command("list")
def dlq_list(
    topic: Topics = None,
    limit: Annotated[int, typer.Option("--limit", help="at most N letters")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array on stdout")] = False,
    every: Annotated[bool, typer.Option("--all", help="replayed letters too")] = False,
    data_dir: StackDir = DEFAULT_DATA_DIR,
) -> int:
    """Show dead letters not yet replayed."""
    connect(data_dir, KAFKA)
    from ragstream.dlq import ListOptions, list_command

    return list_command(ListOptions(topic, limit, as_json, every))


@dlq_app.command("replay")
def dlq_replay(
    topic: Topics = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="only letters with this reason")
    ] = None,
    dry_run: DryRun = False,
    data_dir: StackDir = DEFAULT_DATA_DIR,
) -> int:
    """Republish dead letters to their source topic."""
    connect(data_dir, KAFKA)
    from ragstream.dlq import ReplayOptions, replay_command

    return replay_command(ReplayOptions(topic, reason, dry_run))


def reindex(
    tenant: Annotated[str | None, typer.Option("--tenant", help="the tenant's name")] = None,
    every: Annotated[bool, typer.Option("--all", help="every tenant")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="queue it and return")] = False,
    data_dir: StackDir = DEFAULT_DATA_DIR,
) -> int:
    """Re-index the documents of one tenant, or of all."""
    if (tenant is None) == (not every):
        raise CliError("pass either --tenant NAME or --all")
    connect(data_dir, POSTGRES, KAFKA)
    from ragstream import reindex as reindexing

    return reindexing.run(tenant, not no_wait)


def register(app: typer.Typer) -> None:
    app.command("schemas")(schemas)
    app.command("config-doc")(config_doc)
    app.command("reconcile")(reconcile)
    app.command("reindex")(reindex)
    app.add_typer(user_app, name="user")
    app.add_typer(dlq_app, name="dlq")
