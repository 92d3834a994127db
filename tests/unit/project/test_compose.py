"""compose.yaml as docker-compose v1 (Debian's `docker-compose`) reads it:
valid, every setting in `.env` reaching the app containers, and each
healthcheck a command its image contains."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import Settings

ROOT = Path(__file__).parents[3]
COMPOSE = ROOT / "compose.yaml"
APP_SERVICES = ("migrate", "gateway", "ingest-worker", "query-worker", "sync-worker")
# Fixed by compose whatever .env says (the other containers' addresses, the
# shared volume), set per service, or folders of a machine running `rag up`.
FIXED = {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "CHROMA_URL", "BLOB_DIR"}
PER_SERVICE = {"SECRET_KEY", "SECRET_KEY_PREVIOUS", "METRICS_PORT"}
HOST_ONLY = {"LOG_DIR", "CHROMA_PATH"}
# What each image is known to contain, for its healthcheck: the programs its
# own documentation and entrypoint use (apache/kafka: the Kafka distribution
# under /opt/kafka and a POSIX sh; postgres: pg_isready; redis: redis-cli;
# chromadb/chroma 1.x: a Debian base with bash, neither curl nor python).
IMAGE_COMMANDS = {
    "apache/kafka": {"sh", "/opt/kafka/bin/kafka-broker-api-versions.sh"},
    "postgres": {"sh", "pg_isready"},
    "redis": {"redis-cli"},
    "chromadb/chroma": {"bash"},
}
INSTALL = "docker-compose not found: apt-get install -y docker-compose"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _docker_compose_config(tmp_path: Path, dotenv: str) -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(INSTALL, pytrace=False)
    env_file = tmp_path / "env"
    env_file.write_text(dotenv)
    done = subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        cwd=ROOT,
        # Nothing from this shell: only the file stands in for .env.
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_docker_compose_v1_validates_the_file_and_env_settings_reach_the_apps(
    tmp_path: Path,
) -> None:
    dotenv = (
        "SECRET_KEY=" + "k" * 64 + "\n"
        "LLM_PROVIDER=openai\nRAG_USE_HYDE=false\nOPENAI_API_KEY=sk-test\n"
        "LANGSMITH_API_KEY=ls-test\n"
        # A .env written for `rag services` must not redirect the containers.
        "DATABASE_URL=postgresql://rag:rag@127.0.0.1:5432/rag\n"
    )
    config = _docker_compose_config(tmp_path, dotenv)
    for name in APP_SERVICES:
        env = config["services"][name]["environment"]
        assert env["LLM_PROVIDER"] == "openai", name
        assert str(env["RAG_USE_HYDE"]).lower() == "false", name
        assert env["OPENAI_API_KEY"] == "sk-test", name
        assert env["LANGSMITH_API_KEY"] == "ls-test", name
        assert env["DATABASE_URL"].endswith("@postgres:5432/rag"), name
        # Unset in .env: no value, so the container does not get it at all.
        assert env["RERANKING_METHOD"] is None, name


def test_every_setting_reaches_the_app_containers() -> None:
    shared = set(_compose()["x-rag-env"])
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - shared - PER_SERVICE - HOST_ONLY == set()
    assert shared >= FIXED
    assert not (PER_SERVICE | HOST_ONLY) & shared
    for name in APP_SERVICES:
        assert shared <= set(_compose()["services"][name]["environment"]), name


def test_the_install_hint_is_one_line() -> None:
    assert "\n" not in INSTALL and "apt-get install -y docker-compose" in INSTALL


def test_each_healthcheck_uses_a_command_its_image_contains() -> None:
    checked = []
    for name, service in _compose()["services"].items():
        check = service.get("healthcheck")
        if check is None or check.get("disable"):
            continue
        image = str(service["image"]).rsplit(":", 1)[0]
        test = check["test"]
        if test[0] == "CMD-SHELL":
            program, body = "sh", test[1]
            # The shell's own first command must be in the image too.
            first = body.split()[0]
            assert first in IMAGE_COMMANDS[image], (name, first)
        else:
            assert test[0] == "CMD", name
            program = test[1]
        assert program in IMAGE_COMMANDS[image], (name, program)
        checked.append(name)
    assert sorted(checked) == ["chroma", "kafka", "postgres", "redis"]
    # The app services: the image's own HEALTHCHECK (python, which the image
    # has) for the gateway; none for the migration and the workers.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "-c"' in dockerfile
    services = _compose()["services"]
    assert "healthcheck" not in services["gateway"]
    for name in ("migrate", "ingest-worker", "query-worker"):
        assert services[name]["healthcheck"] == {"disable": True}, name
