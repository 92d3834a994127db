"""Every environment variable that compose.yaml and deploy/k8s give the
ragstream services is one the settings object reads: a typo there would be
ignored silently (the settings ignore unknown variables), and the service
would run on a default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import Settings

ROOT = Path(__file__).parents[2]
APP_SERVICES = ("migrate", "gateway", "ingest-worker", "query-worker")
# Read by the libraries we run, not by our settings.
LIBRARY_VARIABLES = {"FORWARDED_ALLOW_IPS", "PROMETHEUS_MULTIPROC_DIR"}


def _known() -> set[str]:
    return {name.upper() for name in Settings.model_fields} | LIBRARY_VARIABLES


def _compose_variables() -> dict[str, set[str]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return {name: set(compose["services"][name].get("environment", {})) for name in APP_SERVICES}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


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
    return found


@pytest.mark.parametrize("source", ["compose", "k8s"])
def test_every_variable_given_to_the_services_is_a_setting(source: str) -> None:
    variables = _compose_variables() if source == "compose" else _k8s_variables()
    assert variables, "nothing found: the test reads the wrong files"
    unknown = {where: sorted(names - _known()) for where, names in variables.items()}
    assert {where: names for where, names in unknown.items() if names} == {}


def test_the_checker_sees_a_misspelt_variable() -> None:
    assert "RETRIEVAL_TOPK" not in _known()
    assert "RETRIEVAL_TOP_K" in _known()
