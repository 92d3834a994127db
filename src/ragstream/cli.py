"""``rag``: run the whole system or one part of it, operate it, and use it
as a client over its HTTP API.

Service packages (gateway, ingest, query) are imported only inside the
command that runs them, so that ``rag --help`` loads none of them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from pydantic import ValidationError

from ragstream.client.terminal import printable
from ragstream.commands import (
    client,
    conversations,
    evaluate,
    feedback,
    groups,
    maintenance,
    sources,
    stack,
)
from ragstream.errors import CliError
from ragstream.settings import describe

app = typer.Typer(
    name="rag",
    help="ragstream: the whole system, one part of it, or a client of its API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stack.register(app)
maintenance.register(app)
evaluate.register(app)
client.register(app)
conversations.register(app)
feedback.register(app)
groups.register(app)
sources.register(app)


def _usage_error(exc: typer.TyperException) -> str:
    """One line; an unknown option in argparse's words, which scripts grep."""
    ctx = getattr(exc, "ctx", None)
    where = str(getattr(ctx, "command_path", "rag"))
    possibilities = getattr(exc, "possibilities", None)
    if possibilities is not None:  # only an unknown option has them
        hint = f" (did you mean {', '.join(possibilities)}?)" if possibilities else ""
        return f"{where}: unrecognized arguments: {getattr(exc, 'option_name', '')}{hint}"
    return f"{where}: {exc.format_message()} (see {where} --help)"


def run(argv: Sequence[str] | None = None) -> int:
    """The exit code of one ``rag`` invocation."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args, prog_name="rag", standalone_mode=False)
    except typer.TyperException as exc:
        if exc.format_message():  # none after the help `rag` alone prints
            print(_usage_error(exc), file=sys.stderr)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except ValidationError as exc:  # Settings() read by a command's own module
        print(f"rag: {describe(exc)}", file=sys.stderr)
        return 2
    except CliError as exc:  # StackError, ClientError... (ragstream.errors)
        # Expected failures: the message says what to do, a traceback would not.
        print(f"rag: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # A server not there, a file not readable: the environment, not a bug.
        print(f"rag: {type(exc).__name__}: {printable(str(exc))}", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))
