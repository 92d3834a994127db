"""``rag up`` (everything in the foreground) and ``rag services`` (the
infrastructure only), both stopped in order by Ctrl-C or SIGTERM.

Both record how to reach their servers in ``<data dir>/stack.env``
(``ragstream.stack_env``), where the operator commands find them; servers
given in the environment are checked before anything starts."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ragstream.api import ApiError
from ragstream.banner import print_banner
from ragstream.dependencies import BY_VARIABLE, check
from ragstream.errors import CliError
from ragstream.localstack import INFRA_VARS, LocalStack, ManagedProcess, StackConfig
from ragstream.localstack.ports import ensure_free
from ragstream.localstack.stack import BlobStoreKind, BrokerKind
from ragstream.samples import load_samples
from ragstream.settings import load_settings
from ragstream.stack_env import record
from ragstream.supervisor import (
    Shutdown,
    ignore_signals,
    install_shutdown_handlers,
    stop_apps,
    wait_healthy,
    watch,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackOptions:
    data_dir: Path
    broker: BrokerKind
    kafka_port: int
    postgres_port: int
    redis_port: int
    chroma_port: int
    kafka_brokers: int = 1
    blob_store: BlobStoreKind = "local"
    s3_port: int = 8014

    def config(self, environ: Mapping[str, str]) -> StackConfig:
        # A URL already in the environment means "use that server".
        external = {name: environ[name] for name in INFRA_VARS if environ.get(name)}
        return StackConfig(
            data_dir=self.data_dir,
            broker=self.broker,
            kafka_port=self.kafka_port,
            kafka_brokers=self.kafka_brokers,
            postgres_port=self.postgres_port,
            redis_port=self.redis_port,
            chroma_port=self.chroma_port,
            blob_store=self.blob_store,
            s3_port=self.s3_port,
            external=external,
        )


@dataclass(frozen=True)
class UpOptions:
    stack: StackOptions
    host: str
    port: int
    samples: bool
    llm_port: int | None = None
    """Serve the bundled offline instruct model on this port (``--local-llm``)."""

    @property
    def base_url(self) -> str:
        # A wildcard bind is still reached through loopback.
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def secret_key(data_dir: Path) -> str:
    """SECRET_KEY from the environment, else one kept in the data dir so that
    tokens stay valid across restarts."""
    configured = os.environ.get("SECRET_KEY")
    if configured:
        return configured
    path = data_dir / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def app_env(stack: LocalStack, data_dir: Path) -> dict[str, str]:
    env = {**os.environ, **stack.env}
    env["BLOB_DIR"] = str(data_dir / "blobs")
    # Every line also lands in logs/<service>.log; on a terminal, libraries'
    # routine lines go only there.
    env.setdefault("LOG_DIR", str(data_dir / "logs"))
    env["SECRET_KEY"] = secret_key(data_dir)
    # A local stack is for trying things: anyone at this machine may sign up.
    env.setdefault("ALLOW_REGISTRATION", "true")
    # Folder sync may read under <data dir>/sources unless told otherwise
    # (docs/sources.md): a folder copied or mounted there can be synced.
    if "SYNC_ROOTS" not in env:
        (data_dir / "sources").mkdir(parents=True, exist_ok=True)
        env["SYNC_ROOTS"] = json.dumps([str(data_dir / "sources")])
    # The workers must share the Chroma server, not each open a folder.
    env.pop("CHROMA_PATH", None)
    return broker_env(stack, env)


def broker_env(stack: LocalStack, env: dict[str, str]) -> dict[str, str]:
    # Given, not defaulted: the broker started here decides them (tansu's
    # idempotence, a cluster's replication), and so does the S3 server.
    return {**env, **stack.broker_settings, **stack.blob_settings}


def check_external(config: StackConfig, command: str) -> None:
    """The servers named in the environment answer, before any other starts."""
    needs = tuple(BY_VARIABLE[name] for name in INFRA_VARS if name in config.external)
    if needs:

        def hint(variable: str) -> str:
            return f"is {variable} right? unset it, and `rag {command}` starts its own"

        check(load_settings(), needs, hint)
    for dependency in needs:
        logger.info("%s is set: not starting that service", dependency.variable)


def record_settings(data_dir: Path, env: Mapping[str, str], command: str, url: str | None) -> None:
    path = record(data_dir, env, command=command, gateway_url=url)
    logger.info(
        "how to reach this stack written to %s: rag migrate, reindex, reconcile, dlq,"
        " user create and eval read it",
        path,
    )


def app_commands(options: UpOptions) -> dict[str, list[str]]:
    me = [sys.executable, "-m", "ragstream"]
    gateway = [*me, "gateway", "--host", options.host, "--port", str(options.port)]
    return {
        "gateway": gateway,
        "ingest-worker": [*me, "worker", "ingest"],
        "query-worker": [*me, "worker", "query"],
        "sync-worker": [*me, "worker", "sync"],
    }


def start_local_llm(
    options: UpOptions, env: dict[str, str], apps: list[ManagedProcess]
) -> dict[str, str]:
    """``rag llm-server`` as one more child, and the settings that point the
    services at it (any LLM_* already in the environment is replaced)."""
    if options.llm_port is None:
        return env
    from ragstream.local_llm import SMOLLM2_135M, bundled_path

    bundled_path()  # missing or damaged: one line now, not a crashed child
    args = [sys.executable, "-m", "ragstream", "llm-server", "--port", str(options.llm_port)]
    log_path = options.stack.data_dir / "logs" / "llm-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = ManagedProcess("llm-server", args, log_path=log_path, env=env)
    apps.append(server)
    server.start()
    wait_healthy(f"http://127.0.0.1:{options.llm_port}/health", [server])
    return {
        **env,
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{options.llm_port}/v1",
        "LLM_MODEL": SMOLLM2_135M.name,
        # llama.cpp's server asks for no key; the OpenAI client needs one.
        "OPENAI_API_KEY": "local",
    }


def migrate(database_url: str, chroma_url: str | None) -> None:
    """The database schema, then the vector store's layout (``chroma_url``
    None: the workers' embedded Chroma, which has no older layout to move)."""
    try:
        from shared.storage.migrate import upgrade, upgrade_vectors
    except ImportError as exc:
        raise CliError(f"migrations are not available: {exc}", 1) from exc
    try:
        upgrade(database_url)
    except Exception as exc:
        raise CliError(f"migrating the database failed: {_first_line(exc)}", 1) from exc
    logger.info("database migrated")
    if chroma_url:
        try:
            moved = upgrade_vectors(chroma_url)
        except Exception as exc:
            raise CliError(f"migrating the vector store failed: {_first_line(exc)}", 1) from exc
        logger.info("vector store migrated (%d chunks moved to per-tenant collections)", moved)


def _first_line(exc: Exception) -> str:
    return next(iter(str(exc).splitlines()), type(exc).__name__)


def start_apps(options: UpOptions, env: dict[str, str], apps: list[ManagedProcess]) -> None:
    for name, args in app_commands(options).items():
        # log_path None: their log lines go straight to this terminal (and
        # to LOG_DIR).
        app = ManagedProcess(name, args, log_path=None, env=env)
        apps.append(app)
        app.start()


def _serve(options: UpOptions, stack: LocalStack, apps: list[ManagedProcess]) -> int:
    stack.start()
    migrate(stack.env["DATABASE_URL"], stack.env["CHROMA_URL"])
    env = app_env(stack, options.stack.data_dir)
    record_settings(options.stack.data_dir, env, "up", options.base_url)
    env = start_local_llm(options, env, apps)
    start_apps(options, env, apps)
    wait_healthy(f"{options.base_url}/health", apps)
    demo_token = None
    if options.samples:
        try:
            demo_token = load_samples(options.base_url)
        except (ApiError, OSError, ValueError) as exc:
            logger.warning("loading the samples failed, the system keeps running: %s", exc)
    print_banner(options.base_url, options.stack.data_dir, demo_token)
    return watch(stack, apps)


def run_up(options: UpOptions) -> int:
    data_dir = options.stack.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_free(options.port, "pass --port to serve the API on another one")
    if options.llm_port is not None:
        ensure_free(options.llm_port, "pass --llm-port to serve the model on another one")
    config = options.stack.config(os.environ)
    check_external(config, "up")
    stack = LocalStack(config)
    apps: list[ManagedProcess] = []
    install_shutdown_handlers()
    try:
        return _serve(options, stack, apps)
    except Shutdown as stop:
        logger.info("%s received: stopping", stop)
        return 0
    finally:
        ignore_signals()
        stop_apps(apps)
        stack.stop()


def print_exports(stack: LocalStack) -> None:
    """How to point components run by hand at the stack: its servers, and
    what its broker needs of them (a cluster's replication)."""
    exports = {**stack.env, **stack.broker_settings, **stack.blob_settings}
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")
    sys.stdout.flush()


def run_services(options: StackOptions) -> int:
    options.data_dir.mkdir(parents=True, exist_ok=True)
    config = options.config(os.environ)
    check_external(config, "services")
    stack = LocalStack(config)
    install_shutdown_handlers()
    try:
        stack.start()
        env = broker_env(stack, {**os.environ, **stack.env})
        record_settings(options.data_dir, env, "services", None)
        print_exports(stack)
        return watch(stack, [])
    except Shutdown as stop:
        logger.info("%s received: stopping", stop)
        return 0
    finally:
        ignore_signals()
        stack.stop()
