"""The alert rules and the Grafana dashboard query metrics the code really
exports (or standard Kubernetes ones), from the job that exports them, and
every alert threshold of the runbook has a rule.

Exported names come from prometheus_client's registry after importing every
module that defines a metric; a completeness check makes sure that list
misses no module under src/.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from tests.unit.project.gateway_paths import served_routes

ROOT = Path(__file__).parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
METRIC_MODULES = (
    "gateway.doc_events",
    "gateway.http.middleware",
    "gateway.streams.relay",
    "gateway.streams.leaving",
    "gateway.streams.resume",
    "gateway.streams.sse",
    "gateway.streams.replies",
    "gateway.streams.lease",
    "gateway.routes.health",
    "gateway.routes.feedback",
    "query.metrics",
    "ingest.metrics",
    "ingest.reconciler",
    "sync.metrics",
    "shared.runtime.metrics",
    "shared.runtime.consumer",
)
# Which scrape job (podmonitors.yaml: the pod's `app` label) serves the
# metrics of which package. `shared` metrics are in every process.
JOB_PACKAGES = {
    "rag-api": {"gateway", "shared"},
    "rag-ingest-worker": {"ingest", "shared"},
    "rag-query-worker": {"query", "shared"},
    "rag-sync-worker": {"sync", "shared"},
}
# Standard metrics from outside the code: Prometheus itself,
# kube-state-metrics and the kubelet (its cAdvisor and volume statistics).
STANDARD = {
    "up",
    "kube_deployment_status_replicas_available",
    "kube_pod_container_resource_limits",
    "container_memory_working_set_bytes",
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
    "kube_cronjob_status_last_successful_time",
    "kube_cronjob_created",
}
# Where every alert's runbook_url points: absolute (Alertmanager's receivers
# open it from elsewhere), one base, documented where operators change it.
RUNBOOK_BASE = "https://docs.example.com/ragstream/runbook.md"
# Routes whose duration is a whole answer or an open page, not a wait: the
# P95 latency alert leaves them out (its comment says why).
LONG_ROUTES = {"/api/chat/stream", "/api/chat", "/api/documents/events", "/v1/chat/completions"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "inf",
    "nan",
}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"')
_DURATION = re.compile(r"^\d+[smhd]$")


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """The metric names a PromQL expression reads, with their `=` matchers."""
    text = _GROUPING.sub(" ", expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    found = []
    for match in _SELECTOR.finditer(text):
        name, braces, call = match.groups()
        if call or name.lower() in KEYWORDS:
            continue  # a function or aggregation, or an operator
        matchers = {k: v for k, op, v in _MATCHER.findall(braces or "") if op == "="}
        found.append((name, matchers))
    return found


def metric_owners() -> dict[str, set[str]]:
    """Every sample name the code exports -> the packages that define it."""
    owners: dict[str, set[str]] = {}
    for module_name in METRIC_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    for suffix in SUFFIXES[family.type]:
                        sample = family.name + suffix
                        owners.setdefault(sample, set()).add(module_name.split(".")[0])
    return owners


def exported() -> set[str]:
    """Sample names in the registry (the metrics above plus the process and
    platform collectors), checked against metric_owners' view."""
    metric_owners()  # imports the modules, which register their metrics
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def rule_files() -> list[tuple[str, list[dict[str, Any]]]]:
    crd = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    plain = yaml.safe_load((MONITORING / "prometheus-rules.plain.yaml").read_text())
    return [("prometheus-rules.yaml", crd["spec"]["groups"]), ("plain", plain["groups"])]


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_files()[0][1] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return data


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(re.sub(r"^label_values\((\w+),.*", r"\1", variable["definition"]))
    return queries


def all_queries() -> list[tuple[str, str]]:
    return [(r["alert"], r["expr"]) for r in rules()] + [
        ("dashboard", q) for q in dashboard_queries()
    ]


# --- the parser ---------------------------------------------------------------------


def test_the_parser_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{job="x", s=~"5.."}[5m])))'
        " > 3 and on (pod) max without (b) (c:d) / absent(up == 1) * 1e3"
    )
    assert selectors(expr) == [("a_bucket", {"job": "x"}), ("c:d", {}), ("up", {})]


def test_the_registry_check_sees_a_misspelt_name() -> None:
    names = exported()
    assert "rag_http_request_duration_seconds_bucket" in names
    assert "rag_dead_letters_total" in names
    assert "process_resident_memory_bytes" in names
    assert "rag_http_request_duration_seconds_total" not in names
    assert "rag_http_requests_total" not in names


def test_every_module_that_defines_a_metric_is_imported() -> None:
    defining = set()
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        if "from prometheus_client import" in text and re.search(
            r"\b(Counter|Gauge|Histogram|Summary|Info)\(\s*\"", text
        ):
            defining.add(".".join(path.relative_to(ROOT / "src").with_suffix("").parts))
    assert defining == set(METRIC_MODULES)


# --- what the queries read ------------------------------------------------------------


@pytest.mark.parametrize(("where", "expr"), all_queries(), ids=[w for w, _ in all_queries()])
def test_queries_read_exported_metrics_from_the_right_job(where: str, expr: str) -> None:
    names, owners = exported(), metric_owners()
    found = selectors(expr)
    assert found, f"{where}: no metric found in {expr!r}"
    for name, matchers in found:
        assert name in names | STANDARD, f"{where}: {name} is exported by nothing"
        job = matchers.get("job")
        if job is not None and name != "up":
            assert owners[name] & JOB_PACKAGES[job], f"{where}: {job} does not export {name}"


def test_the_dashboard_covers_what_operators_watch() -> None:
    wanted = {
        "request rate": "rag_http_request_duration_seconds_count",
        "error rate": 'status=~"5.."',
        "P95 latency": "histogram_quantile(0.95, sum by (le) (rate(rag_http_request_duration_seconds_bucket",
        "active streams": "rag_gateway_streams_active",
        "consumer lag per group": "max by (group, topic) (rag_kafka_consumer_lag",
        "DB pool": "rag_db_pool_in_use",
        "dead letters": "rag_dead_letters_total",
        "ingest duration": "rag_ingest_duration_seconds_bucket",
    }
    queries = " ".join(dashboard_queries())
    assert {what for what, text in wanted.items() if text not in queries} == set()
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"


# --- the rule files -----------------------------------------------------------------------


def test_rule_files_are_complete_and_the_same() -> None:
    (_, crd), (_, plain) = rule_files()
    assert crd == plain, "prometheus-rules.plain.yaml differs from prometheus-rules.yaml"
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for group in crd:
        assert group["name"] and group["rules"]
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook_url"]
        assert _DURATION.match(rule.get("for", "0s")), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_rule_runbook_links_name_existing_sections() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    links = {rule["annotations"]["runbook_url"].split("#")[1] for rule in rules()}
    assert links - anchors == set()


def test_runbook_urls_are_absolute_under_the_documented_base() -> None:
    urls = [rule["annotations"]["runbook_url"] for rule in rules()]
    tests = yaml.safe_load((MONITORING / "tests" / "rules-test.yaml").read_text())
    urls += [
        alert["exp_annotations"]["runbook_url"]
        for case in tests["tests"]
        for check in case.get("alert_rule_test", [])
        for alert in check.get("exp_alerts", [])
        if "runbook_url" in alert.get("exp_annotations", {})
    ]
    assert urls
    assert {url.split("#")[0] for url in urls} == {RUNBOOK_BASE}
    parts = urlsplit(RUNBOOK_BASE)
    assert (parts.scheme, bool(parts.netloc)) == ("https", True)
    # Documented where operators look for it, with how to change it.
    for doc in (
        MONITORING / "prometheus-rules.yaml",
        ROOT / "deploy" / "k8s" / "README.md",
        ROOT / "docs" / "runbook.md",
    ):
        assert RUNBOOK_BASE in doc.read_text(), doc


def _latency_rule() -> dict[str, Any]:
    [rule] = [r for r in rules() if r["alert"] == "RagLatencyP95High"]
    return rule


def test_the_latency_alert_leaves_out_the_long_routes_and_only_those() -> None:
    served = served_routes()
    assert set(served) >= LONG_ROUTES, LONG_ROUTES - set(served)
    assert "POST" in served["/api/chat"] and "POST" in served["/v1/chat/completions"]
    latency = [("RagLatencyP95High", _latency_rule()["expr"])] + [
        ("dashboard", q)
        for q in dashboard_queries()
        if "rag_http_request_duration_seconds_bucket" in q
    ]
    assert len(latency) == 3
    for where, expr in latency:
        [excluded] = re.findall(r'route!~"([^"]*)"', expr)
        assert set(excluded.split("|")) == LONG_ROUTES, where
        assert "route!=" not in expr and 'route=~"' not in expr, where


# (severity, texts the expression contains, its threshold, the least `for`)
RUNBOOK_THRESHOLDS = [
    ("critical", ['kube_deployment_status_replicas_available{deployment="rag-api"}'], "== 0", "1m"),
    ("critical", ['rag_dependency_up{dependency="postgres"}'], "== 0", "1m"),
    ("critical", ['status=~"5.."', "rag_http_request_duration_seconds_count"], "> 0.05", "1m"),
    (
        "warning",
        ["histogram_quantile(0.95", "rag_http_request_duration_seconds_bucket"],
        "> 3",
        "5m",
    ),
    ("warning", ["container_memory_working_set_bytes", 'resource="memory"'], "> 0.8", "1m"),
    ("warning", ['status=~"5.."', "rag_http_request_duration_seconds_count"], "> 0.01", "1m"),
    ("warning", ["rag_db_pool_in_use", "/ rag_db_pool_max"], "> 0.8", "1m"),
    ("warning", ["kubelet_volume_stats_available_bytes"], "< 0.2", "1m"),
]


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


@pytest.mark.parametrize(("severity", "texts", "threshold", "least"), RUNBOOK_THRESHOLDS)
def test_each_runbook_threshold_has_a_rule(
    severity: str, texts: list[str], threshold: str, least: str
) -> None:
    matching = [
        rule["alert"]
        for rule in rules()
        if rule["labels"]["severity"] == severity
        and all(text in rule["expr"] for text in texts)
        and re.sub(r"\s+", " ", rule["expr"]).strip().endswith(threshold)
        and _seconds(rule.get("for", "0s")) >= _seconds(least)
    ]
    assert len(matching) == 1, (severity, texts, threshold, matching)


def test_the_alerts_fire_on_synthetic_series_and_only_then() -> None:
    """promtool evaluates the rules over made-up series
    (deploy/monitoring/tests/rules-test.yaml): each key alert fires when its
    threshold is crossed for its duration, with its labels and text, and
    stays quiet below it. promtool comes with Prometheus (Debian package
    `prometheus`)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus"
    tests = MONITORING / "tests" / "rules-test.yaml"
    result = subprocess.run(
        [promtool, "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
