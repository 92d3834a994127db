"""Finding the server programs: a package's own copy first, then PATH."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from ragstream.localstack.errors import StackError


def package_dir(package: str) -> Path | None:
    """Where an installed package lives, without importing it."""
    spec = importlib.util.find_spec(package)
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def find_binary(name: str, *, bundled: Path | None, hint: str) -> Path:
    """``bundled`` if it exists (PATH may hold another install's version),
    else ``name`` on PATH, else a StackError saying ``hint``."""
    if bundled is not None and bundled.is_file():
        return bundled
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} was not found: {hint}")
    return Path(found)
