"""Every environment variable that compose.yaml and deploy/k8s give the
ragstream services is one the settings object reads: a typo there would be
ignored silently (the settings ignore unknown variables), and the service
would run on a default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import Settings

ROOT = Path(__file__).parents[3]
APP_SERVICES = ("migrate", "gateway", "ingest-worker", "query-worker", "sync-worker")
# Read by the libraries we run, not by our settings: uvicorn, prometheus_client,
# boto3 (Bedrock's credentials) and LangSmith (shared/runtime/tracing.py).
LIBRARY_VARIABLES = {
    "FORWARDED_ALLOW_IPS",
    "PROMETHEUS_MULTIPROC_DIR",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LANGSMITH_TRACING",
    "LANGSMITH_API_KEY",
    "LANGSMITH_PROJECT",
    "LANGSMITH_ENDPOINT",
}


def _known() -> set[str]:
    return {name.upper() for name in Settings.model_fields} | LIBRARY_VARIABLES


def _compose_variables() -> dict[str, set[str]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return {name: set(compose["services"][name].get("environment", {})) for name in APP_SERVICES}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers running our image: the backup job's postgres container
    reads its own variables, not the settings."""
    spec = doc.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
    containers = [*pod.get("containers", []), *pod.get("initContainers", [])]
    return [c for c in containers if str(c.get("image", "")).startswith("ragstream:")]


def _k8s_variables() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or "metadata" not in doc:
                continue  # kustomization.yaml and the like
            name = f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] in ("ConfigMap", "Secret"):
                found[name] = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
            for container in _containers(doc):
                found[f"{name}/{container['name']}"] = {e["name"] for e in container.get("env", [])}
    # rag-api-secrets' template (secretGenerator); `# KEY=` lines count too.
    for path in sorted((ROOT / "deploy" / "k8s" / "secrets").glob("*.env.example")):
        lines = (line.lstrip("# ") for line in path.read_text().splitlines())
        found[path.name] = {line.split("=")[0] for line in lines if re.match(r"^[A-Z_]+=", line)}
    return found


@pytest.mark.parametrize("source", ["compose", "k8s"])
def test_every_variable_given_to_the_services_is_a_setting(source: str) -> None:
    variables = _compose_variables() if source == "compose" else _k8s_variables()
    assert variables, "nothing found: the test reads the wrong files"
    unknown = {where: sorted(names - _known()) for where, names in variables.items()}
    assert {where: names for where, names in unknown.items() if names} == {}


def test_every_app_workload_is_checked() -> None:
    checked = {where.split(":")[0] for where in _k8s_variables()}
    app = {
        "gateway.yaml",
        "ingest-worker.yaml",
        "query-worker.yaml",
        "sync-worker.yaml",
        "migrate-job.yaml",
    }
    assert app <= checked


def test_the_checker_sees_a_misspelt_variable() -> None:
    assert "RETRIEVAL_TOPK" not in _known()
    assert "RETRIEVAL_TOP_K" in _known()
