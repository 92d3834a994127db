"""The locks in requirements/ agree with pyproject.toml, and every line in
them is an exact pin with its hashes (pip's --require-hashes refuses
anything else, but only at install time, and only for what it installs).

requirements/lock.txt (make install, CI) covers the base dependencies, the
`local` and `dev` extras and the build backend; lock-runtime.txt (the image)
the base dependencies only; lock-build.txt (the image's build stage) the
build backend. All three are for Linux x86_64 and CPython 3.11 (`make lock`),
so requirement markers are evaluated for that platform.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).parents[3]
REQUIREMENTS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK, RUNTIME, BUILD = "lock.txt", "lock-runtime.txt", "lock-build.txt"
LOCKED_EXTRAS = ("local", "dev")
# hatchling's editable install (make install's `pip install -e .`) imports it.
EDITABLE_BACKEND = ["editables"]
# What `make lock` targets: any CPython 3.11.x on Linux x86_64.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: str
    hashes: frozenset[str]


def _logical_lines(text: str) -> list[str]:
    """Continuation lines joined, comments and blank lines dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.split(" #")[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def parse_lock(text: str) -> tuple[dict[NormalizedName, Pin], list[str]]:
    """The pins of a lock, and a problem for each line that is not a
    `name==version` pin with at least one sha256 hash."""
    pins: dict[NormalizedName, Pin] = {}
    problems: list[str] = []
    for line in _logical_lines(text):
        spec, _, options = line.partition(" --")
        options = "--" + options if options else ""
        hashes = HASH.findall(options)
        leftover = HASH.sub("", options).strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            problems.append(f"not a requirement: {line[:80]!r}")
            continue
        specifiers = list(req.specifier)
        if req.url or len(specifiers) != 1 or specifiers[0].operator != "==":
            problems.append(f"{spec}: not pinned with ==")
            continue
        if not hashes:
            problems.append(f"{spec}: no hash")
        if leftover:
            problems.append(f"{spec}: unexpected options {leftover!r}")
        name = canonicalize_name(req.name)
        if name in pins:
            problems.append(f"{spec}: pinned twice")
        pins[name] = Pin(name, specifiers[0].version, frozenset(hashes))
    return pins, problems


def unmet(requirements: list[str], pins: dict[NormalizedName, Pin]) -> list[str]:
    """The requirements (PEP 508 strings) that apply on the target platform
    and that the pins do not satisfy."""
    missing: list[str] = []
    for text in requirements:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({**TARGET, "extra": ""}):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            missing.append(f"{text}: not in the lock")
        elif not req.specifier.contains(pin.version, prereleases=True):
            missing.append(f"{text}: the lock pins {pin.version}")
    return missing


def _base() -> list[str]:
    return list(PYPROJECT["project"]["dependencies"])


def _extras(*names: str) -> list[str]:
    optional = PYPROJECT["project"]["optional-dependencies"]
    return [req for name in names for req in optional[name]]


def _build() -> list[str]:
    return list(PYPROJECT["build-system"]["requires"])


COVERS = {
    LOCK: lambda: [*_base(), *_extras(*LOCKED_EXTRAS), *_build(), *EDITABLE_BACKEND],
    RUNTIME: _base,
    BUILD: _build,
}


def _pins(name: str) -> dict[NormalizedName, Pin]:
    pins, problems = parse_lock((REQUIREMENTS / name).read_text())
    assert problems == [], f"{name}: {problems}"
    return pins


@pytest.mark.parametrize("name", [LOCK, RUNTIME, BUILD, "local-llm.txt"])
def test_every_line_is_an_exact_pin_with_hashes(name: str) -> None:
    pins, problems = parse_lock((REQUIREMENTS / name).read_text())
    assert pins, f"{name} pins nothing"
    assert problems == [], f"{name}: {problems}"


@pytest.mark.parametrize("name", sorted(COVERS))
def test_pyproject_requirements_are_pinned_in_the_lock(name: str) -> None:
    assert unmet(COVERS[name](), _pins(name)) == [], f"{name} is stale: run `make lock`"


def test_every_extra_is_locked() -> None:
    """A new extra in pyproject.toml goes into `make lock` (and LOCKED_EXTRAS)."""
    assert sorted(PYPROJECT["project"]["optional-dependencies"]) == sorted(LOCKED_EXTRAS)


@pytest.mark.parametrize("name", [RUNTIME, BUILD])
def test_the_image_locks_pin_what_ci_tests(name: str) -> None:
    """The image runs the versions (and files) that make install and CI use."""
    full = _pins(LOCK)
    differ = {n: p.version for n, p in _pins(name).items() if full.get(n) != p}
    assert differ == {}, f"{name} differs from {LOCK}: run `make lock`"


def test_the_runtime_lock_holds_no_test_or_local_tools() -> None:
    tools = {canonicalize_name(Requirement(r).name) for r in _extras(*LOCKED_EXTRAS)}
    base = {canonicalize_name(Requirement(r).name) for r in _base()}
    assert sorted((tools - base) & set(_pins(RUNTIME))) == []


def test_the_checks_catch_a_stale_or_unhashed_lock() -> None:
    digest = "0" * 64
    pins, problems = parse_lock(
        "# header\n"
        f"httpx==0.28.1 \\\n    --hash=sha256:{digest}\n    # via -r pyproject.toml\n"
        "pydantic==2.14.4\n"
        f"redis>=5 --hash=sha256:{digest}\n"
        f"-e ./src --hash=sha256:{digest}\n"
    )
    assert problems[0] == "pydantic==2.14.4: no hash"
    assert problems[1] == "redis>=5: not pinned with =="
    assert len(problems) == 3
    assert unmet(
        ["httpx>=0.27,<1", "pydantic>=3", "typer>=0.12", "uvloop; sys_platform == 'win32'"], pins
    ) == [
        "pydantic>=3: the lock pins 2.14.4",
        "typer>=0.12: not in the lock",
    ]


def test_make_install_and_the_image_install_only_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "--require-hashes --no-deps -r requirements/lock.txt" in recipe
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    commands = [
        " ".join(command.split())
        for line in dockerfile.splitlines()
        if line.startswith("RUN ")
        for command in line[4:].split("&&")
        if re.search(r"\bpip (install|wheel)\b", command)
    ]
    assert len(commands) == 4
    for command in commands:
        hashed = re.search(r"--require-hashes --no-deps -r requirements/lock-\w+\.txt", command)
        assert hashed or "--no-index" in command, command
