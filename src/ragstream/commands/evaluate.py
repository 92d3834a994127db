"""``rag eval``: score retrieval configurations on a labelled set."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ragstream.supervisor import CliError


def evaluate(
    base_url: Annotated[str, typer.Option("--base-url", help="a running gateway")] = (
        "http://127.0.0.1:8000"
    ),
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="labelled set folder (default: eval/pydocs)")
    ] = None,
    configs: Annotated[
        str | None, typer.Option("--configs", help="comma-separated names (default: all)")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="only the first N questions")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures to this file")
    ] = None,
) -> int:
    """Score retrieval configurations on a labelled set, through the HTTP API."""
    from ragstream.api import ApiError
    from ragstream.evaluation.dataset import load_dataset, verify
    from ragstream.evaluation.runner import (
        CONFIGS,
        ConfigResult,
        EvalError,
        default_dataset_dir,
        run,
        table,
    )

    labelled = load_dataset(dataset or default_dataset_dir())
    problems = verify(labelled)
    if problems:
        raise CliError("the labelled set is inconsistent:\n  " + "\n  ".join(problems[:10]))
    if limit:
        labelled = labelled.head(limit)
    known = {c.name: c for c in CONFIGS}
    wanted = configs.split(",") if configs else list(known)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise CliError(f"unknown configuration {unknown[0]!r}; known: {', '.join(known)}")

    def say(text: str) -> None:
        print(text, end="", file=sys.stderr, flush=True)

    def write(results: list[ConfigResult]) -> None:
        if json_path:
            figures = [{"config": r.config, "skipped": r.skipped, **r.summary} for r in results]
            json_path.write_text(json.dumps(figures, indent=2))
        say(table(results[-1:]).splitlines()[-1] + "\n")

    try:
        results = run(base_url, labelled, [known[n] for n in wanted], say=say, scored=write)
    except (EvalError, ApiError) as exc:
        raise CliError(str(exc)) from exc
    print(f"{len(labelled.questions)} questions, {len(labelled.documents)} documents\n")
    print(table(results))
    return 0


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
