"""``python -m bench``: start what the benchmarks need, run them, print the
table, write the JSON. See docs/performance.md."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import answers, bulk, cache, ingestion, pipeline, relay, retrieval, streams
from bench.common import Context
from bench.results import Figure, markdown, table, write_json
from bench.stack import infrastructure

Benchmark = Callable[[Context], Awaitable[list[Figure]]]
# In the order they run: the cheap ones first, retrieval's seeding last.
BENCHMARKS: dict[str, Benchmark] = {
    "pipeline": pipeline.run,  # 1. overhead and 4. throughput
    "relay": relay.run,  # 2.
    "streams": streams.run,  # 3.
    "cache": cache.run,  # 7.
    "answers": answers.run,  # 8.
    "ingestion": ingestion.run,  # 5.
    "retrieval": retrieval.run,  # 6.
    "bulk": bulk.run,  # 9.
    "bulk-scale": bulk.run_at_scale,  # 9, at 5,000 documents.
}
# Seconds a benchmark may take where the default (an hour; 20 minutes quick)
# is too short: the full bulk-scale run is 4 imports of 5,000 documents.
LIMITS = {"bulk": 2 * 3600.0, "bulk-scale": 3 * 3600.0}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these (repeat or comma-separate): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about 10 minutes")
    parser.add_argument(
        "--json", type=Path, default=Path(".rag/bench/results.json"), help="where to write"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the stack's data and every process's log"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the gateway and workers under pyinstrument; their reports go to DIR",
    )
    return parser


def _selected(only: list[str]) -> list[str]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}: choose from {list(BENCHMARKS)}")
    return [n for n in BENCHMARKS if not names or n in names]


async def _run(ctx: Context, names: list[str], quick: bool) -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    failed: list[str] = []
    for name in names:
        began = time.monotonic()
        print(f"== {name} ...", flush=True)
        try:
            # A hung benchmark fails alone; the others still run.
            async with asyncio.timeout(LIMITS.get(name, ctx.size(3600, 1200))):
                produced = await BENCHMARKS[name](ctx)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        command = f"python -m bench --only {name}" + (" --quick" if quick else "")
        for figure in produced:
            figure.command = command
        figures += produced
        print(table(produced), flush=True)
        print(f"== {name}: {time.monotonic() - began:.0f} s", flush=True)
    return figures, failed


def _collect_profiles(log_dir: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    for report in sorted(log_dir.glob("*.profile.txt")):
        shutil.copy(report, to / report.name)
    print(f"profiles: {to}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = _selected(args.only)
    data_dir = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        with infrastructure(data_dir, profile=args.profile is not None) as infra:
            ctx = Context(infra=infra, quick=args.quick, out_dir=data_dir)
            figures, failed = asyncio.run(_run(ctx, names, args.quick))
            if args.profile is not None:
                _collect_profiles(infra.log_dir, args.profile)
    finally:
        if args.keep:
            print(f"data and logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    print()
    print(table(figures))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, figures, sys.argv)
    print(f"\nJSON: {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(figures) + "\n")
    if failed:
        print(f"FAILED: {', '.join(failed)} (see the traceback above; --keep keeps the logs)")
        return 1
    return 0
