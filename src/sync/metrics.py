"""The sync worker's metrics: what its runs ended as, and what they did to
files (per worker; sum them)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SYNC_RUNS = Counter(
    "rag_sync_runs_total",
    "Folder-sync runs ended, by outcome (ok, partial, failed, interrupted)",
    ["outcome"],
)
SYNC_FILES = Counter(
    "rag_sync_files_total",
    "Files a folder-sync run handled, by what it did (added, changed, renamed, deleted,"
    " unchanged, failed, skipped, deferred)",
    ["change"],
)
SYNC_RUN_DURATION = Histogram(
    "rag_sync_run_duration_seconds",
    "From a run's start to its end",
    buckets=(0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
)
