"""What ``rag up`` prints once everything answers: the web page first (what
most people open), the API, how to sign in and ask, how to stop. Printed
last, boxed, so it is easy to find; the commands in it are short enough to
copy from the box."""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from ragstream.samples import DEMO_PASSWORD, DEMO_USER, curl_example

EXAMPLE = "How many days do I have to submit an expense report?"


def _facts(base_url: str, data_dir: Path) -> list[Text]:
    rows = [
        ("web page", f"{base_url}/"),
        ("API", base_url),
        ("API docs", f"{base_url}/docs"),
        ("data", f"{data_dir} (logs in {data_dir / 'logs'})"),
        ("stop", "Ctrl-C"),
    ]
    return [Text.assemble((f"{label:<10}", "bold"), value) for label, value in rows]


def _commands(base_url: str, demo: bool) -> list[Text]:
    url = shlex.quote(base_url)
    if not demo:
        return [
            Text("Sign in (start with --samples for a demo user and documents):"),
            Text(f"  rag login --url {url}", style="cyan"),
            Text("  rag ingest ./my-documents", style="cyan"),
        ]
    return [
        Text.assemble("Demo user ", (DEMO_USER, "bold"), " / password ", (DEMO_PASSWORD, "bold")),
        Text(f"  rag login --url {url} -u {DEMO_USER}", style="cyan"),
        Text(f"  rag chat {shlex.quote(EXAMPLE)}", style="cyan"),
    ]


def banner(base_url: str, data_dir: Path, demo_token: str | None) -> Panel:
    lines = [*_facts(base_url, data_dir), Text(), *_commands(base_url, demo_token is not None)]
    if demo_token is not None:
        lines.append(Text("  (or the curl command above)", style="dim"))
    return Panel(
        Group(*lines),
        title="ragstream is up",
        title_align="left",
        border_style="green",
        expand=False,
    )


def print_banner(base_url: str, data_dir: Path, demo_token: str | None) -> None:
    console = Console(highlight=False)
    if demo_token is not None:
        # Outside the box: a token is too long for it, and a copy must not
        # pick up its border.
        console.print(Text("\nWith curl (the token expires; `rag chat` renews its own):"))
        console.print(Text(curl_example(base_url, demo_token)), soft_wrap=True)
    console.print()
    console.print(banner(base_url, data_dir, demo_token))
