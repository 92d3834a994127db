"""The operators' commands in the docs work as written against these
manifests: `kubectl logs` over a label selector reads every line of every
pod, database clients run in a pod that has them and that the database's
NetworkPolicy admits, and restores go into an empty database the way the
restore test does it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.deployment import RESTORE_OPTIONS
from tests.unit.project.test_manifests import APP, containers, objects_of, pod_labels, selects

ROOT = Path(__file__).parents[3]
DOCS = [
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "README.md",
    ROOT / "deploy" / "k8s" / "README.md",
    ROOT / "deploy" / "monitoring" / "prometheus-rules.yaml",
    ROOT / "deploy" / "monitoring" / "prometheus-rules.plain.yaml",
    ROOT / "deploy" / "monitoring" / "tests" / "rules-test.yaml",
]
_LOGS = re.compile(r"kubectl (?:-n \S+ )?logs ([^|`\n]*)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HEREDOC = re.compile(r"<<'?(\w+)'?\n(.*?)^\1$", re.MULTILINE | re.DOTALL)
DB_CLIENTS = re.compile(r"(?<![\w-])(psql|pg_dump|pg_restore)\b")
WHERE = ("kubectl exec", "kubectl run", "docker compose exec")


def _most_replicas() -> int:
    """The largest count any autoscaler may reach."""
    found = [
        int(d["spec"].get("maxReplicas") or d["spec"].get("maxReplicaCount"))
        for folder in (APP, APP / "keda")
        for (kind, _), d in objects_of(folder).items()
        if kind in ("HorizontalPodAutoscaler", "ScaledObject")
    ]
    return max(found)


def _selector_logs() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for args in _LOGS.findall(path.read_text()):
            if re.search(r"(?:-l|--selector)[ =]\S*=", args):
                found.append((path.name, args.strip()))
    return found


def test_kubectl_logs_over_a_selector_reads_every_pod() -> None:
    # With a selector kubectl prints 10 lines per pod unless --tail says
    # otherwise, and follows (-f) at most --max-log-requests pods (5).
    commands = _selector_logs()
    assert len(commands) >= 8, "too few found: the pattern reads the wrong files"
    most = _most_replicas()
    assert most >= 10
    wrong = []
    for where, args in commands:
        tail = re.search(r"--tail[ =](-?\d+)", args)
        requests = re.search(r"--max-log-requests[ =](\d+)", args)
        if tail is None or requests is None or int(requests[1]) < most:
            wrong.append((where, args))
        elif "--since" in args and tail[1] != "-1":
            wrong.append((where, args))  # --since wants every line, not the last N
    assert wrong == []


def _blocks(text: str) -> list[str]:
    """The shell code blocks of a markdown text."""
    return [body for lang, body in _FENCE.findall(text) if lang in ("bash", "sh", "")]


def _section(path: Path, heading: str) -> str:
    """One `## ` section of a markdown file."""
    text = path.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _commands(block: str) -> list[str]:
    """Logical shell commands: continuation lines and quoted or heredoc
    bodies joined to the line that opened them."""
    block = _HEREDOC.sub(lambda m: f"<<{m[1]} HEREDOC ", block)
    commands, current = [], ""
    for raw in block.splitlines():
        # Comments go: an apostrophe in one is no quote.
        line = re.sub(r"(^|\s{2,})#\s.*$", "", raw)
        if not line.strip() and not current:
            continue
        current += line + "\n"
        if current.count("'") % 2 == 0 and not line.rstrip().endswith("\\"):
            commands.append(current)
            current = ""
    return [*commands, current] if current else commands


def test_database_clients_run_where_they_exist_and_may_connect() -> None:
    # The ragstream image has no PostgreSQL client, and the rag-db policy
    # admits only labelled pods: every psql, pg_dump and pg_restore the
    # runbook and the restore procedure give runs in a pod, through exec.
    sources = [
        (ROOT / "docs" / "runbook.md").read_text(),
        _section(ROOT / "docs" / "backup.md", "Restore"),
    ]
    checked, wrong = 0, []
    for source in sources:
        for block in _blocks(source):
            for command in _commands(block):
                if DB_CLIENTS.search(command):
                    checked += 1
                    if not any(where in command for where in WHERE):
                        wrong.append(command.strip())
        for span in re.findall(r"`([^`\n]+)`", source):
            command = "DATABASE_URL" in span or span.startswith(("kubectl", "docker"))
            if DB_CLIENTS.search(span) and command:
                checked += 1
                if not any(where in span for where in WHERE):
                    wrong.append(span)
    assert checked >= 5
    assert wrong == []


def _documented_pods() -> dict[str, dict[str, Any]]:
    pods = {}
    for path in (ROOT / "docs" / "runbook.md", ROOT / "docs" / "backup.md"):
        for block in _blocks(path.read_text()):
            for _, body in _HEREDOC.findall(block):
                doc = yaml.safe_load(body)
                if isinstance(doc, dict) and doc.get("kind") == "Pod":
                    pods[doc["metadata"]["name"]] = doc
    return pods


def test_the_documented_database_pods_have_a_client_and_are_admitted() -> None:
    pods = _documented_pods()
    assert set(pods) == {"rag-psql", "rag-restore"}
    policy = objects_of(APP / "infra")[("NetworkPolicy", "rag-db")]["spec"]
    peers = [peer["podSelector"] for rule in policy["ingress"] for peer in rule["from"]]
    [backup] = containers(objects_of(APP)[("CronJob", "rag-backup")])
    for name, pod in pods.items():
        labels = pod["metadata"]["labels"]
        assert any(selects(peer, labels) for peer in peers), name
        [container] = pod["spec"]["containers"]
        # The backup job's image: it has psql, pg_dump and pg_restore of the
        # server's major version.
        assert container["image"] == backup["image"], name
        [url] = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
        assert url["valueFrom"]["secretKeyRef"] == {
            "name": "rag-api-secrets",
            "key": "DATABASE_URL",
        }
    # The backup job itself is admitted the same way.
    cron = objects_of(APP)[("CronJob", "rag-backup")]
    assert any(selects(peer, pod_labels(cron)) for peer in peers)


def test_restores_go_into_an_empty_database_as_the_restore_test_does() -> None:
    # pg_restore --clean over a newer schema fails: docs/backup.md restores
    # into a new database, with the options tests/e2e/test_backup_restore.py
    # runs (tests/support/deployment.py).
    restores = []
    for path in (ROOT / "docs" / "backup.md", ROOT / "docs" / "runbook.md"):
        for block in _blocks(path.read_text()):
            assert "--clean" not in block, path.name
            for command in _commands(block):
                for line in command.splitlines():
                    if "pg_restore " in line:
                        restores.append(set(re.findall(r"--[\w-]+", line)) - {"--dbname"})
    assert restores == [set(RESTORE_OPTIONS)]
    backup = (ROOT / "docs" / "backup.md").read_text()
    assert "CREATE DATABASE" in backup and "RENAME TO" in backup
