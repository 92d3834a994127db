"""The image, built once per run (tests/support/container.py)."""

from __future__ import annotations

import pytest

from tests.support.container import TIMINGS, app_image, image_size, require_engine


@pytest.fixture(scope="session")
def image() -> str:
    require_engine()
    tag = app_image()
    TIMINGS.size = image_size(tag)
    return tag


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures docs/performance.md reports, in every run's output."""
    if TIMINGS.size:
        base = f"made in {TIMINGS.base:.0f} s" if TIMINGS.base_built else "reused"
        built = f"built in {TIMINGS.image:.0f} s" if TIMINGS.image_built else "reused"
        terminalreporter.write_line(
            f"container image: {TIMINGS.size / 1e6:,.0f} MB, {built}; base image {base}"
        )
