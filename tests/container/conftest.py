"""The image, built once per run (tests/support/container.py)."""

from __future__ import annotations

import pytest

from tests.support.container import TIMINGS, app_image, image_size, require_engine


@pytest.fixture(scope="session")
def image() -> str:
    require_engine()
    tag = app_image()
    base = "made with mmdebstrap" if TIMINGS.base_built else "imported or reused"
    built = f"built in {TIMINGS.image:.0f} s" if TIMINGS.image_built else "reused"
    print(
        f"\nimage {tag}: {image_size(tag) / 1e6:.0f} MB, {built}; base {base}"
        f" ({TIMINGS.base:.0f} s)"
    )
    return tag
