"""The Dockerfile builds without a registry and on either base (the public
python image or one made from Debian's packages); the manifests run its user
on a read-only root with a writable /tmp, which tests/container relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.container import pod_spec

ROOT = Path(__file__).parents[3]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = "\n".join(line for line in DOCKERFILE.splitlines() if not line.startswith("#"))
WORKLOADS = [
    ("gateway.yaml", "Deployment"),
    ("ingest-worker.yaml", "Deployment"),
    ("query-worker.yaml", "Deployment"),
    ("sync-worker.yaml", "Deployment"),
    ("migrate-job.yaml", "Job"),
]


def test_no_syntax_line_the_engine_would_pull() -> None:
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE, re.MULTILINE | re.IGNORECASE)


def test_both_stages_take_the_base_image_whose_default_users_pull() -> None:
    before_from = DOCKERFILE.split("\nFROM ", 1)[0]
    assert "\nARG BASE_IMAGE=python:3.11-slim-bookworm\n" in before_from
    froms = re.findall(r"^FROM (\S+) AS (\w+)$", DOCKERFILE, re.MULTILINE)
    assert froms == [("${BASE_IMAGE}", "build"), ("${BASE_IMAGE}", "runtime")]


def test_commands_work_with_debians_own_python() -> None:
    """Debian's python3 package has no `python` command (the venv does, and
    the runtime stage's PATH starts with it)."""
    build = INSTRUCTIONS.split(" AS build", 1)[1].split(" AS runtime", 1)[0]
    venv_made = build.index("python3 -m venv /opt/venv")
    assert not re.search(r"\bpython -m", build[:venv_made])
    assert "/usr/local/bin/python" not in INSTRUCTIONS


@pytest.mark.parametrize(("manifest", "kind"), WORKLOADS)
def test_each_workload_runs_the_images_user_read_only_with_a_tmp(manifest: str, kind: str) -> None:
    spec = pod_spec(manifest, kind)
    uid = re.search(r"^ARG APP_UID=(\d+)$", DOCKERFILE, re.MULTILINE)
    assert uid and spec.user == f"{uid.group(1)}:{uid.group(1)}"
    assert spec.read_only and spec.no_new_privileges and spec.drop_all
    assert "/tmp" in spec.tmpfs
