"""The container image as users run it: built from the Dockerfile (on a base
made from Debian's packages: no registry here), the migration Job, then the
gateway and both workers each in a container as deploy/k8s runs them (the
image's user, a read-only root filesystem, a tmpfs /tmp, the ConfigMap and
Secret as environment), on the host's network against the test stack. A
document goes in through the containerised gateway and comes back as a
streamed, cited answer; the gateway container drains on SIGTERM.

Needs a container engine (`.ci/run` starts one); without it these fail with
one line saying how to get one."""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import subprocess
import tarfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from shared.adapters.onnx_models import BGE_SMALL_EN_V15, MS_MARCO_MINILM_L12
from shared.storage.migrate import code_revisions
from tests.support.api import (
    SseEvent,
    User,
    answer_text,
    new_user,
    parse_sse,
    upload,
    wait_for_status,
)
from tests.support.container import (
    ROOT,
    Container,
    configmap,
    docker,
    docker_cli,
    pod_env,
    pod_spec,
    require_engine,
    run_args,
    run_detached,
    run_once,
    unique,
)
from tests.support.deployment import with_database
from tests.support.openai_server import FakeOpenAI, RunningServer
from tests.support.processes import free_port

# Building the image (on a fresh engine) comes first: minutes, not seconds.
pytestmark = pytest.mark.timeout(1500)

POLICY = b"""# Travel policy

Employees must submit travel expense claims within 30 days of returning.
Meals are reimbursed up to 45 euros per day. Hotel rooms are booked by the travel desk.
"""
ANSWER = "Travel expense claims are due within 30 days of returning [1]."


# A PEM private key, body and all (libraries that merely name the marker, or
# quote an example inside JSON strings, do not match).
PRIVATE_KEY = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64,}"
    rb"-----END [A-Z ]*PRIVATE KEY-----"
)


def test_a_container_engine_answers() -> None:
    require_engine()


def test_the_image_holds_no_tests_git_or_secrets(image: str) -> None:
    config = json.loads(docker("image", "inspect", image, "--format", "{{json .Config}}").stdout)
    names = [entry.split("=", 1)[0] for entry in config["Env"] or []]
    assert not [n for n in names if re.search(r"SECRET|PASSWORD|TOKEN|_KEY", n)], names
    assert config["User"] == "10001:10001"

    # This repository's own test files (tests/<folder>/<file>, which no
    # dependency's bundled tests are named like), wherever they might be.
    repo_tests = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("*.py")
        if len(p.relative_to(ROOT).parts) >= 3 and p.name != "__init__.py"
    }
    found: dict[str, list[str]] = {"git": [], "env": [], "tests": [], "source": [], "keys": []}
    files = 0
    for member, content in _image_files(image):
        files += 1
        parts = member.name.split("/")
        if ".git" in parts:
            found["git"].append(member.name)
        if parts[-1] == ".env" or parts[-1].startswith(".env."):
            found["env"].append(member.name)
        if "tests" in parts and any(f"/{member.name}".endswith(f"/{t}") for t in repo_tests):
            found["tests"].append(member.name)
        if parts[0] == "build" or "/src/gateway/" in f"/{member.name}":
            found["source"].append(member.name)
        if content is not None and PRIVATE_KEY.search(content):
            found["keys"].append(member.name)
    assert files > 1000
    assert found == {"git": [], "env": [], "tests": [], "source": [], "keys": []}
    print(f"{files} files checked: no .git, .env, test, source tree or private key")


def _image_files(image: str) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """Every regular file of the image's filesystem, with its content when
    small enough to hold a key (docker export of a created container)."""
    name = unique("rag-export")
    docker("create", "--name", name, image)
    try:
        export = subprocess.Popen([str(docker_cli()), "export", name], stdout=subprocess.PIPE)
        assert export.stdout is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                small = member.size <= 1_000_000
                handle = tar.extractfile(member) if small else None
                yield member, handle.read() if handle else None
        assert export.wait(timeout=120) == 0
    finally:
        docker("rm", "--force", name, check=False)


MODEL_CHECK = """
import json, shutil, sys
from pathlib import Path
from shared.adapters.onnx_models import (BGE_SMALL_EN_V15, MS_MARCO_MINILM_L12, MODEL_FILE,
    ModelUnavailable, OnnxTextModel, bundled_dir, sha256_of)
out = {}
for model in (BGE_SMALL_EN_V15, MS_MARCO_MINILM_L12):
    directory = bundled_dir(model)
    loaded = OnnxTextModel.load(model)
    [vector] = loaded.run(["travel expense claims"])
    out[model.source] = {
        "sha256": {name: sha256_of(directory / name) for name in model.sha256},
        "shape": list(vector.shape),
    }
# A damaged copy (one byte changed, in the tmpfs) is refused.
damaged = Path("/tmp/damaged")
shutil.copytree(bundled_dir(BGE_SMALL_EN_V15), damaged)
data = bytearray((damaged / MODEL_FILE).read_bytes())
data[-1] ^= 1
(damaged / MODEL_FILE).write_bytes(bytes(data))
try:
    OnnxTextModel.load(BGE_SMALL_EN_V15, damaged)
except ModelUnavailable as error:
    out["damaged"] = str(error)
print(json.dumps(out))
"""


def test_the_bundled_models_load_inside_the_image(image: str) -> None:
    spec = pod_spec("ingest-worker.yaml", "Deployment")
    options = run_args(spec, {}, {})
    done = run_once(image, options, ["-c", MODEL_CHECK], entrypoint="python")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for model in (BGE_SMALL_EN_V15, MS_MARCO_MINILM_L12):
        assert result[model.source]["sha256"] == dict(model.sha256)
    assert result[BGE_SMALL_EN_V15.source]["shape"][-1] == 384
    assert len(result[MS_MARCO_MINILM_L12.source]["shape"]) == 1
    assert "does not match the pinned sha256" in result["damaged"]


# --- The deployment: the Job, then the three services ----------------------


@dataclass
class Deployed:
    image: str
    database_url: str
    migrate_output: str
    alembic_current: str
    gateway: Container
    ingest: Container
    query: Container
    base_url: str
    llm: FakeOpenAI
    openai_key: str


@pytest.fixture(scope="module")
def deployed(image: str, stack_env: dict[str, str]) -> Iterator[Deployed]:
    database = f"image_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(stack_env["DATABASE_URL"], f'CREATE DATABASE "{database}"'))
    volume = unique("rag-blobs")
    docker("volume", "create", volume)
    started: list[Container] = []
    llm = FakeOpenAI(reply=lambda _: ANSWER)
    try:
        with RunningServer(llm):
            yield _deploy(image, stack_env, database, volume, llm, started)
    finally:
        for container in started:
            container.remove()
        docker("volume", "rm", "--force", volume, check=False)
        asyncio.run(
            _admin(stack_env["DATABASE_URL"], f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        )


def _deploy(
    image: str,
    stack_env: dict[str, str],
    database: str,
    volume: str,
    llm: FakeOpenAI,
    started: list[Container],
) -> Deployed:
    # configmap.yaml with this site's hosts, as an operator edits it: one
    # broker here, so replication 1.
    config = {
        **configmap(),
        "KAFKA_BOOTSTRAP_SERVERS": stack_env["KAFKA_BOOTSTRAP_SERVERS"],
        "REDIS_URL": stack_env["REDIS_URL"],
        "CHROMA_URL": stack_env["CHROMA_URL"],
        "KAFKA_TOPIC_PREFIX": unique("image"),
        "KAFKA_REPLICATION_FACTOR": "1",
        "KAFKA_MIN_INSYNC_REPLICAS": "1",
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": llm.base_url,
        "ALLOW_REGISTRATION": "true",
    }
    openai_key = f"sk-test-{secrets.token_hex(8)}"
    database_url = with_database(stack_env["DATABASE_URL"], database)
    # secrets/secrets.env, filled in.
    secret = {
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": database_url,
        "OPENAI_API_KEY": openai_key,
    }
    volumes = {"rag-blobs": volume}

    job = pod_spec("migrate-job.yaml", "Job")
    job_options = run_args(job, pod_env(job, config, secret), volumes)
    migrated = run_once(image, job_options, job.args)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    current = run_once(image, job_options, ["-m", "alembic", "current"], entrypoint="python")
    assert current.returncode == 0, current.stderr[-3000:]

    containers = {}
    for kind, manifest in (("ingest", "ingest-worker.yaml"), ("query", "query-worker.yaml")):
        spec = pod_spec(manifest, "Deployment")
        env = pod_env(spec, config, secret)
        # The manifests' 9100 is per pod; here every container shares the host.
        env["METRICS_PORT"] = str(free_port())
        container = run_detached(
            unique(f"rag-{kind}"), image, run_args(spec, env, volumes), spec.args
        )
        started.append(container)
        containers[kind] = container
    for container in containers.values():
        container.wait_for_log("Worker started")

    spec = pod_spec("gateway.yaml", "Deployment")
    port = free_port()
    # The manifest's command, on loopback: the host's network is shared.
    args = _with_option(_with_option(spec.args, "--host", "127.0.0.1"), "--port", str(port))
    gateway = run_detached(
        unique("rag-gateway"), image, run_args(spec, pod_env(spec, config, secret), volumes), args
    )
    started.append(gateway)
    base_url = f"http://127.0.0.1:{port}"
    _wait_ready(gateway, base_url)
    return Deployed(
        image,
        database_url,
        migrated.stdout + migrated.stderr,
        current.stdout,
        gateway,
        containers["ingest"],
        containers["query"],
        base_url,
        llm,
        openai_key,
    )


def _with_option(args: list[str], option: str, value: str) -> list[str]:
    assert option in args, (option, args)
    at = args.index(option)
    return [*args[: at + 1], value, *args[at + 2 :]]


def _wait_ready(gateway: Container, base_url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not gateway.state()["Running"]:
            raise RuntimeError(f"the gateway exited:\n{gateway.logs()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the gateway never became ready:\n{gateway.logs()[-3000:]}")


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def test_the_migrate_job_brings_the_database_to_head(deployed: Deployed) -> None:
    head = code_revisions().head
    assert f"{head} (head)" in deployed.alembic_current, deployed.alembic_current
    version = asyncio.run(_version(deployed.database_url))
    assert version == head
    print(f"rag migrate in a Job-like container: {head}; alembic current agrees")


async def _version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        value: str = await conn.fetchval("SELECT version_num FROM alembic_version")
        return value
    finally:
        await conn.close()


@asynccontextmanager
async def _client(deployed: Deployed) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=deployed.base_url, timeout=30) as client:
        yield client


async def test_upload_indexed_and_answer_streamed_with_citations(deployed: Deployed) -> None:
    async with _client(deployed) as client:
        user = await new_user(client, "image")
        doc_id = await upload(client, user, "travel-policy.md", POLICY)
        doc = await wait_for_status(client, user, doc_id, timeout=120)
        assert doc["status"] == "indexed", doc
        assert doc["chunks"] >= 1
        events = await _chat(client, user, "How long do I have to submit travel expenses?")
    kinds = [e.event for e in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1, kinds
    [sources] = [e.data for e in events if e.event == "sources"]
    assert sources[0]["document_id"] == doc_id
    assert sources[0]["filename"] == "travel-policy.md"
    assert answer_text(events) == ANSWER
    assert 1 in events[-1].data["cited"]
    # The model was asked with the retrieved passage and the Secret's key.
    [chat] = [r for r in deployed.llm.received if r.path.endswith("/chat/completions")]
    assert chat.authorization == f"Bearer {deployed.openai_key}"
    assert "within 30 days" in json.dumps(chat.body["messages"])


async def _chat(client: httpx.AsyncClient, user: User, message: str) -> list[SseEvent]:
    async with client.stream(
        "POST", "/api/chat/stream", headers=user.headers, json={"message": message}, timeout=60
    ) as response:
        assert response.status_code == 200, await response.aread()
        return parse_sse((await response.aread()).decode())


async def test_the_gateway_container_drains_on_sigterm(deployed: Deployed) -> None:
    # Last: it stops the gateway. A 20-word answer at 0.15 s a word, well
    # inside the ConfigMap's SHUTDOWN_GRACE_SECONDS.
    words = "Claims are due within thirty days of returning from the trip, as the policy says"
    deployed.llm.reply = lambda _: f"{words} plus a few more words to stream slowly [1]."
    deployed.llm.token_delay = 0.15
    async with _client(deployed) as client:
        user = await new_user(client, "image-drain")
        doc_id = await upload(client, user, "policy.md", POLICY)
        assert (await wait_for_status(client, user, doc_id, timeout=120))["status"] == "indexed"
        first_token = asyncio.Event()
        reader = asyncio.create_task(_read_stream(client, user, first_token))
        await asyncio.wait_for(first_token.wait(), 30)
        signalled = time.monotonic()
        stopping = asyncio.create_task(
            asyncio.to_thread(docker, "stop", "--time", "60", deployed.gateway.name, timeout=90)
        )
        await asyncio.sleep(0.5)
        readiness = await client.get("/health/ready")
        events = await asyncio.wait_for(reader, 60)
        await stopping
    stopped_in = time.monotonic() - signalled
    state = deployed.gateway.state()
    logs = deployed.gateway.logs()

    assert readiness.status_code == 503 and readiness.json()["failed"] == ["draining"]
    assert [e.event for e in events][-1] == "done", events[-3:]
    assert answer_text(events).endswith("[1].")
    assert state["ExitCode"] == 0 and not state["OOMKilled"], (state, logs[-3000:])
    assert "Traceback" not in logs, logs[-3000:]
    assert stopped_in < 30
    print(
        f"docker stop with a chat streaming: the stream ended done, readiness 503 draining,"
        f" the container exited {state['ExitCode']} {stopped_in:.1f} s after SIGTERM"
    )


async def _read_stream(
    client: httpx.AsyncClient, user: User, first: asyncio.Event
) -> list[SseEvent]:
    body = io.StringIO()
    async with client.stream(
        "POST", "/api/chat/stream", headers=user.headers, json={"message": "When?"}, timeout=60
    ) as response:
        assert response.status_code == 200
        async for text in response.aiter_text():
            body.write(text)
            if "event: token" in body.getvalue():
                first.set()
    return parse_sse(body.getvalue())
