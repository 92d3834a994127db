"""`rag up` as a user runs it: the whole stack from nothing, samples loaded,
a question answered, a folder synced, Ctrl-C stops every process, and state
survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ragstream.localstack.ports import free_port_pair, free_ports
from tests.support.api import parse_sse

DEMO = {"username": "demo", "password": "demo-password-123"}


def _ports() -> list[int]:
    """api, kafka, postgres, redis, chroma: Kafka's controller takes kafka + 1."""
    kafka = free_port_pair()
    api, postgres, redis, chroma = [p for p in free_ports(6) if p not in (kafka, kafka + 1)][:4]
    return [api, kafka, postgres, redis, chroma]


def _start(data_dir: Path, ports: list[int], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    api, kafka, postgres, redis, chroma = ports
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_SERVERS"))}
    env.pop("SECRET_KEY", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ragstream",
                "up",
                "--data-dir",
                str(data_dir),
                "--port",
                str(api),
                "--kafka-port",
                str(kafka),
                "--postgres-port",
                str(postgres),
                "--redis-port",
                str(redis),
                "--chroma-port",
                str(chroma),
                *extra,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for_samples(base: str, log: Path) -> str:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            login = httpx.post(f"{base}/api/auth/login", json=DEMO, timeout=5)
            if login.status_code == 200:
                token: str = login.json()["access_token"]
                docs = httpx.get(
                    f"{base}/api/documents", headers={"Authorization": f"Bearer {token}"}
                ).json()
                if len(docs) >= 2 and all(d["status"] == "indexed" for d in docs):
                    return token
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"samples never indexed:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes], data_dir: Path) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 0
    leftovers = subprocess.run(
        ["pgrep", "-f", str(data_dir)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == [], f"processes left behind: {leftovers}"


def _ask(base: str, token: str) -> list[str]:
    response = httpx.post(
        f"{base}/api/chat/stream",
        headers={"Authorization": f"Bearer {token}"},
        json={"message": "How many days do I have to file an expense claim?"},
        timeout=60,
    )
    assert response.status_code == 200
    events = parse_sse(response.text)
    assert events[-1].event == "done"
    [sources] = [e.data for e in events if e.event == "sources"]
    return [s["filename"] for s in sources]


def _sync_a_folder(base: str, token: str, data_dir: Path) -> None:
    """`rag up` runs a sync worker and allows <data dir>/sources: a folder
    there registered as a source becomes indexed documents."""
    folder = data_dir / "sources" / "handbook"
    folder.mkdir(parents=True)
    (folder / "parking.md").write_text("# Parking\n\nVisitors park on level two of the garage.\n")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"name": "handbook", "path": str(folder)}
    added = httpx.post(f"{base}/api/sources", headers=headers, json=body, timeout=30)
    assert added.status_code == 201, added.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        docs = httpx.get(f"{base}/api/documents", headers=headers, timeout=30).json()
        synced = [d for d in docs if d["meta"].get("source") == "handbook"]
        if synced and synced[0]["status"] == "indexed":
            assert synced[0]["filename"] == "parking.md"
            return
        time.sleep(1)
    raise AssertionError("the synced folder's document was never indexed")


@pytest.mark.timeout(600)
def test_rag_up_serves_the_flow_and_keeps_state(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "state", tmp_path / "rag-up.log"
    ports = _ports()
    base = f"http://127.0.0.1:{ports[0]}"

    process = _start(data_dir, ports, log, "--samples")
    try:
        token = _wait_for_samples(base, log)
        assert "expense-policy.md" in _ask(base, token)
        _sync_a_folder(base, token, data_dir)
    finally:
        _stop(process, data_dir)

    # Same data dir, fresh processes: users, documents and vectors are still
    # there. This time answers are generated by the bundled offline model.
    [llm_port] = [p for p in free_ports(8) if p not in ports][:1]
    process = _start(data_dir, ports, log, "--local-llm", "--llm-port", str(llm_port))
    try:
        token = _wait_for_samples(base, log)
        assert "expense-policy.md" in _ask(base, token)
        assert "total time =" in (data_dir / "logs" / "llm-server.log").read_text()
    finally:
        _stop(process, data_dir)
    still = subprocess.run(
        ["pgrep", "-f", f"llm-server --port {llm_port}"], capture_output=True, check=False
    ).stdout
    assert not still, "the LLM server was left running"


def test_rag_up_without_java_says_so_in_one_line(tmp_path: Path, stack_env: dict[str, str]) -> None:
    # Everything but the broker is "already running", so only Kafka needs Java.
    env = {
        **os.environ,
        **{k: v for k, v in stack_env.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
        "PATH": str(tmp_path / "empty-bin"),
        "RAG_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    api, kafka = _ports()[:2]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ragstream",
            "up",
            "--data-dir",
            str(tmp_path / "state"),
            "--kafka-port",
            str(kafka),
            "--port",
            str(api),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "Java" in message
    assert "--broker tansu" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
