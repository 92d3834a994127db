"""Lines logged with ``QUIET_ON_TERMINAL`` (the gateway's access line for a
quick successful read): DEBUG on a terminal, so hidden at the default
level; at their own level in JSON, on stdout and in ``LOG_DIR``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.terminal import run_on_terminal

PROBE = """
import structlog
from shared.config import Settings
from shared.runtime.logging import QUIET_ON_TERMINAL, configure_logging
configure_logging(Settings(), "probe")
log = structlog.get_logger("gateway.access")
log.info("Request finished", method="GET", status=200, **{QUIET_ON_TERMINAL: True})
log.info("Request finished", method="POST", status=201)
"""


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("LOG_")}, **extra}


def test_a_terminal_hides_them_at_info(tmp_path: Path) -> None:
    status, shown = run_on_terminal([sys.executable, "-c", PROBE], _env(LOG_DIR=str(tmp_path)))
    assert status == 0, shown
    assert shown.count("Request finished") == 1 and "POST" in shown and "GET" not in shown
    kept = [json.loads(line) for line in (tmp_path / "probe.log").read_text().splitlines()]
    assert [(k["method"], k["level"]) for k in kept] == [("GET", "INFO"), ("POST", "INFO")]
    assert all(set(k) >= {"event", "status"} and "_quiet_on_terminal" not in k for k in kept)


def test_a_terminal_shows_them_as_debug_at_debug() -> None:
    status, shown = run_on_terminal([sys.executable, "-c", PROBE], _env(LOG_LEVEL="DEBUG"))
    assert status == 0, shown
    [get] = [line for line in shown.splitlines() if "GET" in line]
    [post] = [line for line in shown.splitlines() if "POST" in line]
    assert "debug" in get.lower() and "info" not in get.lower()
    assert "info" in post.lower()


def test_json_keeps_them_at_their_level() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(k["method"], k["level"]) for k in lines] == [("GET", "INFO"), ("POST", "INFO")]
    assert all("_quiet_on_terminal" not in k for k in lines)
