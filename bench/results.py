"""Figures, their percentiles, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest-rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50": round(pct(ms, 50), 2),
        "p95": round(pct(ms, 95), 2),
        "p99": round(pct(ms, 99), 2),
        "mean": round(statistics.fmean(ms), 2) if ms else math.nan,
    }


@dataclass
class Figure:
    """One row of the table. ``ratio`` is measured / baseline where there is a
    baseline; ``met`` is None when the issue sets no target."""

    name: str
    target: str
    measured: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    added: float | None = None  # measured - baseline, where that is the figure
    met: bool | None = None
    command: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.baseline is None:
            return None
        return round(self.measured / self.baseline, 3)


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def table(figures: Sequence[Figure]) -> str:
    header = ("figure", "target", "measured", "baseline", "added", "ratio", "met")
    rows = [header]
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "NO")
        baseline = _fmt(f.baseline, f.unit) + (f" ({f.baseline_label})" if f.baseline_label else "")
        rows.append(
            (
                f.name,
                f.target,
                _fmt(f.measured, f.unit),
                baseline,
                _fmt(f.added, f.unit),
                _fmt(f.ratio),
                met,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(figures: Sequence[Figure]) -> str:
    lines = [
        "| figure | target | measured | baseline | added | ratio | met | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "**no**")
        baseline = _fmt(f.baseline, f.unit) + (f" ({f.baseline_label})" if f.baseline_label else "")
        lines.append(
            f"| {f.name} | {f.target or '-'} | {_fmt(f.measured, f.unit)} | {baseline} |"
            f" {_fmt(f.added, f.unit)} | {_fmt(f.ratio)} | {met} | `{f.command}` |"
        )
    return "\n".join(lines)


def write_json(path: Path, figures: Sequence[Figure], argv: Sequence[str]) -> None:
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": list(argv),
        "machine": {
            "cpus": _cpus(),
            "python": platform.python_version(),
            "load_average": list(_load()),
        },
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _load() -> tuple[float, float, float]:
    import os

    return os.getloadavg()
