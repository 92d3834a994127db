"""`rag gateway --workers N`: N processes, one set of metrics."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.support.processes import start_gateway


def _health_count(metrics: str) -> float:
    pattern = r'rag_http_request_duration_seconds_count\{method="GET",route="/health",status="200"\} (\S+)'
    match = re.search(pattern, metrics)
    assert match, metrics[:2000]
    return float(match.group(1))


def test_metrics_of_all_gateway_processes_are_served_together(
    app_env: dict[str, str], log_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**app_env, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    gateway = start_gateway("gateway-two-processes", env, log_dir, workers=2)
    try:
        base = gateway.base_url or ""
        # Both processes must be up before counting: each logs its own start.
        while gateway.log().count("Gateway started") < 2:
            httpx.get(f"{base}/health", timeout=5)
        before = _health_count(httpx.get(f"{base}/metrics", timeout=5).text)
        for _ in range(30):
            # A new connection each time, so both processes get some.
            assert httpx.get(f"{base}/health", timeout=5).status_code == 200
        scrapes = [_health_count(httpx.get(f"{base}/metrics", timeout=5).text) for _ in range(6)]
    finally:
        gateway.stop()
    # Whichever process answers the scrape, it reports every process's count.
    assert scrapes == [before + 30] * 6
    writers = {re.sub(r"\D", "", p.stem) for p in folder.glob("histogram_*.db")}
    assert len(writers) == 2, sorted(folder.iterdir())
