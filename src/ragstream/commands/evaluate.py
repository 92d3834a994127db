"""``rag eval``: score retrieval configurations, and their answers, on a labelled set."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

from ragstream.commands.maintenance import StackDir
from ragstream.dependencies import DependencyError, reason, url_address
from ragstream.errors import CliError
from ragstream.stack_env import DEFAULT_DATA_DIR, GATEWAY_VAR, use

if TYPE_CHECKING:
    from ragstream.evaluation.dataset import Dataset


class Split(StrEnum):
    """Which questions to ask: settings are tuned on one half, figures reported
    on the other; ``all`` asks both (and any question without a split)."""

    tune = "tune"
    test = "test"
    all = "all"


DEFAULT_URL = "http://127.0.0.1:8000"


def evaluate(
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="a running gateway (default: $RAG_URL, else the local stack's, else"
            f" {DEFAULT_URL})",
        ),
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="labelled set folder (default: eval/pydocs)")
    ] = None,
    configs: Annotated[
        str | None, typer.Option("--configs", help="comma-separated names (default: all)")
    ] = None,
    split: Annotated[
        Split, typer.Option("--split", help="the questions of one half of the set, or all")
    ] = Split.all,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            help="only N questions: the first answerable and unanswerable ones, in proportion",
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures to this file")
    ] = None,
    review_list: Annotated[
        Path | None,
        typer.Option(
            "--review-list",
            help="instead: write the questions your tenant rated down here, as lines for"
            " questions.jsonl to label (needs `rag login` as a tenant admin)",
        ),
    ] = None,
    data_dir: StackDir = DEFAULT_DATA_DIR,
) -> int:
    """Score retrieval configurations and their answers on a labelled set, through
    the HTTP API."""
    if review_list is not None:
        return write_review_list(review_list, base_url)
    from ragstream.api import ApiError
    from ragstream.evaluation.dataset import load_dataset, verify
    from ragstream.evaluation.runner import (
        CONFIGS,
        ConfigResult,
        EvalError,
        default_dataset_dir,
        headline,
        json_rows,
        run,
        sample,
        table,
    )

    labelled = load_dataset(dataset or default_dataset_dir())
    problems = verify(labelled)
    if problems:
        raise CliError("the labelled set is inconsistent:\n  " + "\n  ".join(problems[:10]))
    if split is not Split.all:
        labelled = labelled.only(split.value)
    if limit:
        labelled = sample(labelled, limit)
    if not labelled.questions:
        raise CliError(f"no questions to ask (split: {split.value})")
    known = {c.name: c for c in CONFIGS}
    wanted = configs.split(",") if configs else list(known)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise CliError(f"unknown configuration {unknown[0]!r}; known: {', '.join(known)}")

    def say(text: str) -> None:
        print(text, end="", file=sys.stderr, flush=True)

    def write(results: list[ConfigResult]) -> None:
        if json_path:
            rows = json_rows(results, split.value)
            json_path.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
        say(headline(results[-1]) + "\n")

    url, hint = gateway_url(base_url, data_dir)
    try:
        results = run(url, labelled, [known[n] for n in wanted], say=say, scored=write)
    except (EvalError, ApiError) as exc:
        raise CliError(str(exc)) from exc
    except httpx.TransportError as exc:
        where = url_address(url, 80)
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            raise DependencyError(
                f"cannot connect to the gateway at {where}: {reason(exc)} ({hint})"
            ) from exc
        raise DependencyError(f"lost the gateway at {where}: {reason(exc)} ({hint})") from exc
    print(header(labelled, split) + "\n")
    print(table(results))
    return 0


def write_review_list(path: Path, url: str | None) -> int:
    """The questions rated down, one JSON line each, for a person to label."""
    from ragstream.client import feedback
    from ragstream.client.session import Session, open_login
    from ragstream.evaluation.review import review_lines

    with Session(open_login(url)) as session:
        rated_down = feedback.list_feedback(session, "down", limit=100_000)
    lines = review_lines(rated_down)
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    print(f"{len(lines)} questions rated down ({len(rated_down)} ratings) written to {path}")
    return 0


def gateway_url(flag: str | None, data_dir: Path) -> tuple[str, str]:
    """``--base-url``, else $RAG_URL, else the local stack's gateway, else
    the default; and what to do if it does not answer."""
    if flag:
        return flag.rstrip("/"), "is --base-url right?"
    sources = use(data_dir)
    url = os.environ.get(GATEWAY_VAR) or DEFAULT_URL
    origin = sources.origin(GATEWAY_VAR)
    if origin == "file":
        hint = (
            f"read from {sources.path}: is the `rag up` that wrote it running? else pass --base-url"
        )
    elif origin == "environment":
        hint = f"is {GATEWAY_VAR} right? else pass --base-url"
    else:
        hint = f"is `rag up` running? else pass --base-url or set {GATEWAY_VAR}"
    return url.rstrip("/"), hint


def header(labelled: Dataset, split: Split) -> str:
    """What was asked: ``N questions (A answerable, U unanswerable), D documents;
    split: S``."""
    answerable = len(labelled.answerable().questions)
    unanswerable = len(labelled.questions) - answerable
    return (
        f"{len(labelled.questions)} questions ({answerable} answerable, "
        f"{unanswerable} unanswerable), {len(labelled.documents)} documents; "
        f"split: {split.value}"
    )


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
