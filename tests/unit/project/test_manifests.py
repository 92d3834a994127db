"""The manifests in deploy/ are valid Kubernetes objects, tied together by
their kustomizations, and use the names the runbook's commands rely on
(deployment/rag-api, app=rag-api, the Secret rag-api-secrets).

Core objects are checked against the Kubernetes OpenAPI schemas
(kubernetes-validate, offline, strict: an unknown or misspelt field fails).
Custom resources (PrometheusRule, PodMonitor, ScaledObject) have no schema
there; their required fields are checked by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.unit.project.gateway_paths import served_routes

ROOT = Path(__file__).parents[3]
DEPLOY = ROOT / "deploy"
APP = DEPLOY / "k8s"
# The oldest release still supported upstream when this was written; the
# manifests use nothing newer (the pod-index label needs 1.28).
K8S_VERSION = "1.32"
CUSTOM_GROUPS = ("monitoring.coreos.com/", "keda.sh/", "cert-manager.io/")
POD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet")
SECRET = "rag-api-secrets"

Doc = dict[str, Any]


@dataclass(frozen=True)
class Kustomization:
    path: Path
    body: Doc

    @property
    def folder(self) -> Path:
        return self.path.parent

    def entries(self, key: str) -> list[str]:
        return [str(e) for e in self.body.get(key) or []]

    def generator_files(self, key: str) -> list[Path]:
        files: list[Path] = []
        for generator in self.body.get(key) or []:
            for entry in [*generator.get("files", []), *generator.get("envs", [])]:
                files.append(self.folder / str(entry).split("=")[-1])
        return files


def kustomizations() -> list[Kustomization]:
    return [
        Kustomization(path, yaml.safe_load(path.read_text()))
        for path in sorted(DEPLOY.rglob("kustomization.yaml"))
    ]


def by_folder(folder: Path) -> Kustomization:
    return next(k for k in kustomizations() if k.folder == folder)


def docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def is_manifest(path: Path) -> bool:
    return any("apiVersion" in d and "kind" in d for d in docs(path))


def resources(k: Kustomization) -> Iterator[tuple[Path, Doc]]:
    """Every object a kustomization lists, following folders and components."""
    for entry in [*k.entries("resources"), *k.entries("components")]:
        target = k.folder / entry
        if target.is_dir():
            yield from resources(by_folder(target))
        else:
            for doc in docs(target):
                yield target, doc


def all_objects() -> list[tuple[Path, Doc]]:
    seen: dict[tuple[str, str, str], tuple[Path, Doc]] = {}
    for k in kustomizations():
        for path, doc in resources(k):
            seen[(str(path), doc["kind"], doc["metadata"]["name"])] = (path, doc)
    return list(seen.values())


def objects_of(folder: Path) -> dict[tuple[str, str], Doc]:
    return {(d["kind"], d["metadata"]["name"]): d for _, d in resources(by_folder(folder))}


def pod_template(doc: Doc) -> Doc:
    spec = doc["spec"]
    return dict(spec.get("jobTemplate", {}).get("spec", spec)["template"])


def pod_spec(doc: Doc) -> Doc:
    return dict(pod_template(doc)["spec"])


def containers(doc: Doc) -> list[Doc]:
    pod = pod_spec(doc)
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


def env_file(path: Path) -> dict[str, str]:
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    pairs = [ln.split("=", 1) for ln in lines if ln and not ln.startswith("#")]
    return dict(pairs)


# --- kustomizations ---------------------------------------------------------


def test_kustomizations_list_only_files_that_exist() -> None:
    missing = []
    for k in kustomizations():
        for entry in [*k.entries("resources"), *k.entries("components")]:
            if not (k.folder / entry).exists():
                missing.append(f"{k.path.relative_to(ROOT)}: {entry}")
        for path in k.generator_files("configMapGenerator"):
            if not path.is_file():
                missing.append(f"{k.path.relative_to(ROOT)}: {path.name}")
    assert missing == []


def test_secret_generators_read_a_git_ignored_file_with_a_committed_template() -> None:
    env_files = [p for k in kustomizations() for p in k.generator_files("secretGenerator")]
    assert {p.relative_to(DEPLOY).as_posix() for p in env_files} == {
        "k8s/secrets/secrets.env",
        "k8s/infra/postgres.env",
    }
    for path in env_files:
        assert path.with_name(path.name + ".example").is_file(), path
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} would be committed"
        template = subprocess.run(
            ["git", "check-ignore", "-q", str(path) + ".example"], cwd=ROOT, check=False
        )
        assert template.returncode == 1, f"{path}.example is ignored"


def test_every_manifest_is_in_some_kustomization() -> None:
    listed = {path for path, _ in all_objects()}
    files = [p for p in sorted(DEPLOY.rglob("*.yaml")) if p.name != "kustomization.yaml"]
    manifests = [p for p in files if is_manifest(p)]
    assert len(manifests) >= 15, "too few manifests found: the test reads the wrong folder"
    assert [p.relative_to(ROOT).as_posix() for p in manifests if p not in listed] == []


def test_the_app_kustomization_leaves_secrets_infra_and_keda_out() -> None:
    kinds = {kind for kind, _ in objects_of(APP)}
    assert "Secret" not in kinds  # applying the app never overwrites credentials
    assert "StatefulSet" not in kinds
    assert "ScaledObject" not in kinds
    assert by_folder(APP / "keda").body["kind"] == "Component"


# --- schemas ----------------------------------------------------------------


def core_objects() -> list[tuple[Path, Doc]]:
    return [(p, d) for p, d in all_objects() if not d["apiVersion"].startswith(CUSTOM_GROUPS)]


@pytest.mark.parametrize(
    "doc",
    [d for _, d in core_objects()],
    ids=[f"{p.relative_to(DEPLOY)}:{d['kind']}/{d['metadata']['name']}" for p, d in core_objects()],
)
def test_core_objects_match_the_kubernetes_schema(doc: Doc) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    deployment = objects_of(APP)[("Deployment", "rag-api")]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRefs"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_generated_secrets_are_valid_objects() -> None:
    for k in kustomizations():
        options = k.body.get("generatorOptions", {})
        for generator in k.body.get("secretGenerator") or []:
            assert options.get("disableNameSuffixHash") is True, k.path
            data: dict[str, str] = {}
            for entry in generator["envs"]:
                data |= env_file(k.folder / f"{entry}.example")
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": generator["name"], "labels": options.get("labels", {})},
                "type": generator.get("type", "Opaque"),
                "stringData": data,
            }
            kubernetes_validate.validate(secret, K8S_VERSION, strict=True)


def custom_objects() -> list[Doc]:
    return [d for _, d in all_objects() if d["apiVersion"].startswith(CUSTOM_GROUPS)]


def test_custom_resources_have_their_required_fields() -> None:
    found = {d["kind"] for d in custom_objects()}
    assert found == {"PrometheusRule", "PodMonitor", "ScaledObject"}
    for doc in custom_objects():
        assert doc["metadata"]["name"]
        spec = doc["spec"]
        if doc["kind"] == "PrometheusRule":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert spec["groups"] and all(g["name"] and g["rules"] for g in spec["groups"])
        elif doc["kind"] == "PodMonitor":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert spec["selector"] and spec["podMetricsEndpoints"]
        else:
            assert doc["apiVersion"] == "keda.sh/v1alpha1"
            assert spec["scaleTargetRef"]["name"]
            for trigger in spec["triggers"]:
                meta = trigger["metadata"]
                assert trigger["type"] == "kafka"
                assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(meta)


def test_pod_monitors_scrape_ports_the_pods_name() -> None:
    pods = [d for _, d in all_objects() if d["kind"] in POD_KINDS]
    for monitor in (d for d in custom_objects() if d["kind"] == "PodMonitor"):
        selected = [p for p in pods if selects(monitor["spec"]["selector"], pod_labels(p))]
        assert selected, monitor["metadata"]["name"]
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            for pod in selected:
                names = {port["name"] for c in containers(pod) for port in c.get("ports", [])}
                assert endpoint["port"] in names, (monitor["metadata"]["name"], pod["metadata"])


# --- names the runbook relies on ---------------------------------------------


def test_the_gateway_is_deployment_rag_api_labelled_app_rag_api() -> None:
    objects = objects_of(APP)
    deployment = objects[("Deployment", "rag-api")]
    assert deployment["metadata"]["labels"]["app"] == "rag-api"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "rag-api"}
    assert deployment["spec"]["template"]["metadata"]["labels"]["app"] == "rag-api"
    assert objects[("Service", "rag-api")]["spec"]["selector"] == {"app": "rag-api"}
    hpa = objects[("HorizontalPodAutoscaler", "rag-api")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "rag-api",
    }
    assert objects[("PodDisruptionBudget", "rag-api")]["spec"]["selector"]["matchLabels"] == {
        "app": "rag-api"
    }


def secret_refs(container: Doc) -> dict[str, str]:
    """Variable (or `*` for a whole-Secret envFrom) -> the Secret it comes from."""
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            refs["*"] = source["secretRef"]["name"]
    return refs


def test_app_pods_take_credentials_from_rag_api_secrets() -> None:
    pods = {name: d for (kind, name), d in objects_of(APP).items() if kind in POD_KINDS}
    assert {
        "rag-api",
        "rag-ingest-worker",
        "rag-query-worker",
        "rag-sync-worker",
        "rag-migrate",
    } <= set(pods)
    for name, pod in pods.items():
        for container in containers(pod):
            refs = secret_refs(container)
            plain = {e["name"] for e in container.get("env", []) if "value" in e}
            # Credentials never sit in a manifest as plain values.
            assert not plain & {"DATABASE_URL", "SECRET_KEY", "SECRET_KEY_PREVIOUS"}, name
            assert set(refs.values()) <= {SECRET}, name
            if name != "rag-api":
                assert refs.get("DATABASE_URL") == SECRET, name
    gateway = secret_refs(containers(pods["rag-api"])[0])
    assert gateway["SECRET_KEY"] == gateway["*"] == SECRET


def test_the_secrets_kustomization_makes_rag_api_secrets_with_every_key() -> None:
    k = by_folder(APP / "secrets")
    [generator] = k.body["secretGenerator"]
    assert generator["name"] == SECRET
    keys = env_file(k.folder / "secrets.env.example")
    assert {"SECRET_KEY", "DATABASE_URL"} <= set(keys)
    # The variables the app pods read from the Secret by name all exist in
    # the template (SECRET_KEY_PREVIOUS is optional and commented out).
    named = {
        var
        for (kind, _), d in objects_of(APP).items()
        if kind in POD_KINDS
        for c in containers(d)
        for var in secret_refs(c)
    } - {"*", "SECRET_KEY_PREVIOUS"}
    assert named <= set(keys)


# --- infrastructure and scaling ------------------------------------------------


def test_infra_services_are_where_the_app_looks_for_them() -> None:
    config = objects_of(APP)[("ConfigMap", "rag-api-config")]["data"]
    services = {
        name: d["spec"]["ports"][0]["port"]
        for (kind, name), d in objects_of(APP / "infra").items()
        if kind == "Service"
    }
    kafka_host, kafka_port = config["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    database = env_file(APP / "secrets" / "secrets.env.example")["DATABASE_URL"]
    wanted = [(kafka_host, int(kafka_port))]
    for url in (config["REDIS_URL"], config["CHROMA_URL"], database):
        parts = urlsplit(url)
        wanted.append((str(parts.hostname), int(parts.port or 0)))
    assert [(host, services.get(host)) for host, _ in wanted] == wanted


def test_kafka_quorum_names_every_node() -> None:
    kafka = objects_of(APP / "infra")[("StatefulSet", "rag-kafka")]
    env = {e["name"]: e.get("value") for e in containers(kafka)[0]["env"]}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    replicas = kafka["spec"]["replicas"]
    assert voters == [f"{i}@rag-kafka-{i}.rag-kafka-headless:9093" for i in range(replicas)]
    config = objects_of(APP)[("ConfigMap", "rag-api-config")]["data"]
    assert int(config["KAFKA_REPLICATION_FACTOR"]) <= replicas


def test_no_autoscaler_goes_beyond_the_partitions() -> None:
    objects = objects_of(APP)
    config = objects[("ConfigMap", "rag-api-config")]["data"]
    requests, replies = (
        int(config["KAFKA_REQUEST_PARTITIONS"]),
        int(config["KAFKA_REPLY_PARTITIONS"]),
    )
    assert (
        objects[("HorizontalPodAutoscaler", "rag-query-worker")]["spec"]["maxReplicas"] <= requests
    )
    assert objects[("HorizontalPodAutoscaler", "rag-api")]["spec"]["maxReplicas"] <= replies
    scaled = [d for (kind, _), d in objects_of(APP / "keda").items() if kind == "ScaledObject"]
    assert {d["spec"]["scaleTargetRef"]["name"] for d in scaled} == {
        "rag-query-worker",
        "rag-ingest-worker",
    }
    for doc in scaled:
        assert doc["spec"]["maxReplicaCount"] <= requests


def test_keda_replaces_the_query_worker_hpa() -> None:
    # Two HPAs on one Deployment fight; the component deletes the CPU one.
    patches = [yaml.safe_load(p["patch"]) for p in by_folder(APP / "keda").body["patches"]]
    [deleted] = [p for p in patches if p.get("$patch") == "delete"]
    assert (deleted["kind"], deleted["metadata"]["name"]) in objects_of(APP)


# --- exposure -------------------------------------------------------------------


def pod_labels(doc: Doc) -> dict[str, str]:
    return dict(pod_template(doc)["metadata"]["labels"])


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        inside = present and labels[expr["key"]] in expr.get("values", [])
        wanted = {"In": inside, "NotIn": not inside, "Exists": present}
        if not wanted.get(expr["operator"], not present):
            return False
    return True


def policies() -> list[Doc]:
    return [d for _, d in all_objects() if d["kind"] == "NetworkPolicy"]


def test_every_pod_is_closed_to_inbound_by_default() -> None:
    deny = objects_of(APP)[("NetworkPolicy", "default-deny-ingress")]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_only_the_gateway_is_reachable_from_outside_the_namespace() -> None:
    outside: dict[str, set[str]] = {}
    for policy in policies():
        spec = policy["spec"]
        for rule in spec.get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']} admits every source"
            for peer in rule["from"]:
                assert "ipBlock" not in peer
                if "namespaceSelector" in peer:
                    ns = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    outside.setdefault(ns, set()).add(policy["metadata"]["name"])
    assert outside == {
        "ingress-nginx": {"rag-api"},  # clients, through the Ingress
        "monitoring": {"rag-api", "rag-workers-metrics"},  # scrapes only
        "keda": {"rag-kafka-from-keda"},  # the optional component's lag reads
    }
    gateway = next(p for p in policies() if p["metadata"]["name"] == "rag-api")
    assert gateway["spec"]["podSelector"] == {"matchLabels": {"app": "rag-api"}}


def test_infra_admits_only_the_app_pods() -> None:
    app_pods = [d for (kind, _), d in objects_of(APP).items() if kind in POD_KINDS]
    infra = objects_of(APP / "infra")
    pods = [*app_pods, *(d for (kind, _), d in infra.items() if kind == "StatefulSet")]
    for (kind, name), sts in infra.items():
        if kind != "StatefulSet":
            continue
        guarding = [
            p
            for (k, _), p in infra.items()
            if k == "NetworkPolicy" and selects(p["spec"]["podSelector"], pod_labels(sts))
        ]
        assert guarding, f"{name} has no policy"
        peers = [peer for p in guarding for rule in p["spec"]["ingress"] for peer in rule["from"]]
        assert all(set(peer) == {"podSelector"} for peer in peers), name  # this namespace only
        admitted = [
            d for peer in peers for d in pods if selects(peer["podSelector"], pod_labels(d))
        ]
        assert admitted, f"no app pod may reach {name}"
        # Besides the app, only the service's own pods (Kafka's quorum).
        assert [d["metadata"]["name"] for d in admitted if d not in [*app_pods, sts]] == []


def test_the_ingress_serves_the_api_over_tls_but_not_metrics() -> None:
    ingress = objects_of(APP)[("Ingress", "rag-api")]["spec"]
    hosts = {h for t in ingress["tls"] for h in t["hosts"]}
    paths = []
    for rule in ingress["rules"]:
        assert rule["host"] in hosts
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"] == {"name": "rag-api", "port": {"name": "http"}}
            paths.append(path["path"])
    assert {"/api", "/health", "/docs"} <= set(paths)
    rules = [path for rule in ingress["rules"] for path in rule["http"]["paths"]]
    assert not [r["path"] for r in rules if _ingress_matches("/metrics", r)]


def _ingress_matches(path: str, rule: Doc) -> bool:
    """Kubernetes' matching: Exact is the whole path, Prefix whole elements."""
    if rule["pathType"] == "Exact":
        return path == rule["path"]
    prefix = [p for p in rule["path"].split("/") if p]
    return [p for p in path.split("/") if p][: len(prefix)] == prefix


def test_the_ingress_routes_every_path_the_gateway_serves_but_metrics() -> None:
    ingress = objects_of(APP)[("Ingress", "rag-api")]["spec"]
    rules = [path for rule in ingress["rules"] for path in rule["http"]["paths"]]
    served = served_routes()
    assert {"/v1/chat/completions", "/", "/web/{name}", "/asyncapi"} <= set(served)
    unrouted = [
        template
        for template in served
        if template != "/metrics"
        and not any(_ingress_matches(re.sub(r"\{\w+\}", "x", template), r) for r in rules)
    ]
    assert unrouted == []
    assert not [r["path"] for r in rules if _ingress_matches("/metrics", r)]
    # The matcher itself: element-wise prefixes, whole exact paths.
    prefix, exact = {"path": "/api", "pathType": "Prefix"}, {"path": "/", "pathType": "Exact"}
    assert _ingress_matches("/api/x", prefix) and not _ingress_matches("/apix", prefix)
    assert _ingress_matches("/", exact) and not _ingress_matches("/metrics", exact)


# --- operator defects: storage, secrets, scaling, names ------------------------------


def _mount_paths(doc: Doc) -> list[str]:
    return [m["mountPath"] for c in containers(doc) for m in c.get("volumeMounts", [])]


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize(
    ("statefulset", "variable"), [("rag-kafka", "KAFKA_LOG_DIRS"), ("rag-db", "PGDATA")]
)
def test_data_lives_in_a_subdirectory_of_its_volume(statefulset: str, variable: str) -> None:
    # A fresh ext4/xfs volume has lost+found at its root: Kafka and initdb
    # refuse a data directory holding it.
    sts = objects_of(APP / "infra")[("StatefulSet", statefulset)]
    [claim] = sts["spec"]["volumeClaimTemplates"]
    mounts = [
        m["mountPath"]
        for c in containers(sts)
        for m in c.get("volumeMounts", [])
        if m["name"] == claim["metadata"]["name"]
    ]
    folder = _env(containers(sts)[0])[variable]["value"]
    assert [m for m in mounts if folder.startswith(m.rstrip("/") + "/")], (folder, mounts)


def app_containers(folder: Path = APP) -> dict[str, Doc]:
    """The containers running the ragstream image, by workload."""
    return {
        name: c
        for (kind, name), d in objects_of(folder).items()
        if kind in POD_KINDS
        for c in containers(d)
        if str(c["image"]).startswith("ragstream:")
    }


def test_every_app_container_gets_the_whole_secret_after_the_config_map() -> None:
    # The Secret's keys (REDIS_URL with a password, provider keys, ...) reach
    # every process, and win over the ConfigMap's.
    found = app_containers()
    assert set(found) == {
        "rag-api",
        "rag-ingest-worker",
        "rag-query-worker",
        "rag-sync-worker",
        "rag-migrate",
    }
    for name, container in found.items():
        assert container["envFrom"] == [
            {"configMapRef": {"name": "rag-api-config"}},
            {"secretRef": {"name": SECRET}},
        ], name


def test_the_secret_template_documents_every_secret_setting() -> None:
    from pydantic import SecretStr

    from shared.config import Settings

    text = (APP / "secrets" / "secrets.env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    secret_settings = {
        name.upper()
        for name, field in Settings.model_fields.items()
        if "SecretStr" in repr(field.annotation) or field.annotation is SecretStr
    }
    assert {"SECRET_KEY", "OPENAI_API_KEY", "KAFKA_SASL_PASSWORD"} <= secret_settings
    wanted = secret_settings | {
        "DATABASE_URL",
        "REDIS_URL",
        "KAFKA_SASL_USERNAME",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LANGSMITH_TRACING",
        "LANGSMITH_API_KEY",
    }
    assert wanted - documented == set()


def test_no_replicas_where_an_autoscaler_owns_the_count() -> None:
    # kubectl apply would reset the autoscaler's count to the manifest's on
    # every apply (a gateway scaled to 10 dropping to 3 cuts streams).
    objects = objects_of(APP)
    deployments = {name: d for (kind, name), d in objects.items() if kind == "Deployment"}
    hpa_targets = {
        d["spec"]["scaleTargetRef"]["name"]
        for (kind, _), d in objects.items()
        if kind == "HorizontalPodAutoscaler"
    }
    assert hpa_targets == {"rag-api", "rag-query-worker"}
    assert {t: deployments[t]["spec"].get("replicas") for t in hpa_targets} == dict.fromkeys(
        hpa_targets
    )
    # The KEDA component: its ScaledObjects' targets lose any replicas too.
    keda = by_folder(APP / "keda")
    patched = [yaml.safe_load(p["patch"]) for p in keda.body["patches"]]
    nulled = {
        p["metadata"]["name"]
        for p in patched
        if p.get("kind") == "Deployment"
        and "replicas" in p["spec"]
        and p["spec"]["replicas"] is None
    }
    for (kind, _), scaled in objects_of(APP / "keda").items():
        if kind == "ScaledObject":
            target = scaled["spec"]["scaleTargetRef"]["name"]
            assert "replicas" not in deployments[target]["spec"] or target in nulled, target


def test_the_gateway_believes_forwarded_addresses_from_the_ingress_only() -> None:
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    value = objects_of(APP)[("ConfigMap", "rag-api-config")]["data"]["FORWARDED_ALLOW_IPS"]
    assert "*" not in value
    trusted = _TrustedHosts(value)
    # Pod addresses of common CNIs (an ingress-nginx pod), but no public one.
    for pod in ("10.244.1.7", "10.42.0.12", "172.17.0.5", "192.168.3.4", "100.64.2.1"):
        assert pod in trusted, pod
    for client in ("8.8.8.8", "203.0.113.9", "2001:db8::1"):
        assert client not in trusted, client
    # Trusting ranges is safe only while nothing but the ingress controller
    # and Prometheus may reach the gateway.
    test_only_the_gateway_is_reachable_from_outside_the_namespace()


def _readme_namespace() -> str:
    readme = (APP / "README.md").read_text()
    [namespace] = set(re.findall(r"kubectl create namespace (\S+)", readme))
    return namespace


def test_keda_and_the_brokers_use_names_that_resolve_from_other_namespaces() -> None:
    namespace = _readme_namespace()
    services = {
        name: {p["port"] for p in d["spec"]["ports"]}
        for (kind, name), d in objects_of(APP / "infra").items()
        if kind == "Service"
    }
    for (kind, name), scaled in objects_of(APP / "keda").items():
        if kind != "ScaledObject":
            continue
        for trigger in scaled["spec"]["triggers"]:
            for server in trigger["metadata"]["bootstrapServers"].split(","):
                host, port = server.rsplit(":", 1)
                service, ns, svc = host.split(".", 2)
                assert (ns, svc) == (namespace, "svc"), (name, server)
                assert int(port) in services[service], (name, server)
    kafka = objects_of(APP / "infra")[("StatefulSet", "rag-kafka")]
    env = list(containers(kafka)[0]["env"])
    names = [e["name"] for e in env]
    advertised = _env(containers(kafka)[0])["KAFKA_ADVERTISED_LISTENERS"]["value"]
    assert advertised == "PLAINTEXT://$(POD_NAME).rag-kafka-headless.$(POD_NAMESPACE).svc:9092"
    # $(VAR) expands only variables defined earlier in the list.
    for variable, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        assert names.index(variable) < names.index("KAFKA_ADVERTISED_LISTENERS")
        assert _env(containers(kafka)[0])[variable]["valueFrom"]["fieldRef"]["fieldPath"] == field


_QUANTITY = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _bytes(quantity: str) -> int:
    return int(quantity[:-2]) * _QUANTITY[quantity[-2:]]


def _backup() -> tuple[Doc, dict[str, str], str]:
    cron = objects_of(APP)[("CronJob", "rag-backup")]
    [container] = containers(cron)
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    return container, env, container["args"][0]


def test_the_backup_volume_holds_the_retention() -> None:
    objects = objects_of(APP)
    size = {
        name: _bytes(d["spec"]["resources"]["requests"]["storage"])
        for (kind, name), d in objects.items()
        if kind == "PersistentVolumeClaim"
    }
    _, env, _ = _backup()
    retention = int(env["BACKUP_RETENTION_DAYS"])
    # Each backup holds a tar of the blob volume (uploads barely compress).
    assert size["rag-backups"] >= retention * size["rag-blobs"]


def _run_backup(tmp_path: Path, free_kb: int) -> subprocess.CompletedProcess[str]:
    """The CronJob's script, with its folders in tmp_path and the PostgreSQL
    client and df stubbed: a 3 MiB database, the blobs as they are."""
    _, env, script = _backup()
    backups, blobs, bin_dir = tmp_path / "backups", tmp_path / "blobs", tmp_path / "bin"
    for folder in (backups, blobs, bin_dir):
        folder.mkdir(exist_ok=True)
    (blobs / "upload.bin").write_bytes(os.urandom(2 * 2**20))
    stubs = {
        "psql": "echo 3145728",
        "pg_dump": 'for a; do case "$a" in --file=*) echo dump > "${a#--file=}";; esac; done',
        "df": f'echo "Filesystem 1024-blocks Used Available Capacity Mounted"; '
        f'echo "fake 999999999 1 {free_kb} 1% /backups"',
    }
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    script = script.replace("/var/lib/rag/blobs", str(blobs)).replace("/backups", str(backups))
    return subprocess.run(
        ["/bin/sh", "-eu", "-c", script],
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "DATABASE_URL": "postgresql+asyncpg://rag:pw@db:5432/rag",
            "BACKUP_RETENTION_DAYS": env["BACKUP_RETENTION_DAYS"],
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_backup_job_fails_loudly_without_room_and_writes_nothing(tmp_path: Path) -> None:
    short = _run_backup(tmp_path, free_kb=4 * 1024)  # 2 MiB of blobs + 3 MiB of database
    assert short.returncode == 1
    assert "backup FAILED: not enough space on" in short.stderr, short.stderr
    assert "MiB needed" in short.stderr
    assert list((tmp_path / "backups").iterdir()) == []
    roomy = _run_backup(tmp_path, free_kb=50 * 1024)
    assert roomy.returncode == 0, roomy.stderr
    [made] = list((tmp_path / "backups").iterdir())
    assert sorted(p.name for p in made.iterdir()) == ["blobs.tar.gz", "rag.dump"]


def test_the_backup_job_removes_expired_backups_before_its_room_check() -> None:
    _, _, script = _backup()
    assert script.index("-mtime +") < script.index("df -Pk") < script.index("pg_dump")


def _pyproject_version() -> str:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def test_images_have_pinned_tags() -> None:
    # `latest` with IfNotPresent: each node runs whichever `latest` it pulled
    # first. The app's tag is the release's version.
    version = _pyproject_version()
    for path, doc in all_objects():
        if doc["kind"] not in POD_KINDS:
            continue
        for container in containers(doc):
            image = str(container["image"])
            name, _, tag = image.rpartition(":") if "@" not in image else (image, "", "digest")
            assert name and tag and tag != "latest", f"{path.name}: {image}"
            if name == "ragstream":
                assert tag == version, f"{path.name}: {image}, pyproject says {version}"
    [image] = by_folder(APP).body["images"]
    assert (image["name"], str(image["newTag"])) == ("ragstream", version)


# --- blobs in S3 (deploy/k8s/s3) ----------------------------------------------


def _s3_patches() -> dict[tuple[str, str], Doc]:
    component = by_folder(APP / "s3")
    assert component.body["kind"] == "Component"
    patched = [yaml.safe_load(p["patch"]) for p in component.body["patches"]]
    return {(p["kind"], p["metadata"]["name"]): p for p in patched}


def _blob_volume(doc: Doc) -> str | None:
    """The name of the pod's volume backed by rag-blobs, if any."""
    for volume in pod_spec(doc).get("volumes", []):
        if volume.get("persistentVolumeClaim", {}).get("claimName") == "rag-blobs":
            return str(volume["name"])
    return None


def test_the_s3_component_leaves_no_pod_needing_the_rwx_volume() -> None:
    """Every pod that mounts rag-blobs is patched: its volume deleted (or made
    an emptyDir), and each mount deleted from a container that exists (a
    misnamed container would be added, not patched), and the claim is gone."""
    patches = _s3_patches()
    assert patches[("PersistentVolumeClaim", "rag-blobs")]["$patch"] == "delete"
    users = {key: doc for key, doc in objects_of(APP).items() if key[0] in POD_KINDS}
    users = {key: doc for key, doc in users.items() if _blob_volume(doc)}
    assert {name for _, name in users} == {
        "rag-api",
        "rag-ingest-worker",
        "rag-sync-worker",
        "rag-backup",
    }
    for key, doc in users.items():
        patch = patches[key]
        volume = _blob_volume(doc)
        [patched] = [v for v in pod_spec(patch)["volumes"] if v["name"] == volume]
        assert patched.get("$patch") == "delete" or (
            "emptyDir" in patched and patched["persistentVolumeClaim"] is None
        ), key
        if patched.get("$patch") != "delete":
            continue  # an emptyDir keeps its mounts
        base = {c["name"]: c for c in containers(doc)}
        for container in pod_spec(patch)["containers"]:
            assert container["name"] in base, f"{key}: no container {container['name']}"
            mounts = [m for m in container["volumeMounts"] if m.get("$patch") == "delete"]
            wanted = [m["mountPath"] for m in base[container["name"]]["volumeMounts"]]
            assert [m["mountPath"] for m in mounts] == [
                m for m in wanted if m == "/var/lib/rag/blobs"
            ]


def test_the_s3_component_sets_the_store_with_keys_the_settings_know() -> None:
    from shared.config import Settings

    data = _s3_patches()[("ConfigMap", "rag-api-config")]["data"]
    assert data["BLOB_STORE"] == "s3" and data["BLOB_S3_BUCKET"]
    assert {key.lower() for key in data} <= set(Settings.model_fields)
