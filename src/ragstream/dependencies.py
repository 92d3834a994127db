"""Whether the servers a command needs answer, checked before it starts:
one that cannot be reached, or refuses the credentials, is one line naming
the service and its address (never a password) and what to do, exit 1,
instead of a traceback from deep inside a client library.

::

    rag: cannot connect to PostgreSQL at 127.0.0.1:5432: password authentication
    failed for user "rag" (is DATABASE_URL right? a local stack's settings are
    read from .rag/ if unset)

(one line). ``connect`` is what an operator command calls first: the local
stack's recorded settings (``ragstream.stack_env``), the settings, then the
checks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ragstream.errors import CliError
from ragstream.settings import load_settings
from ragstream.stack_env import use

if TYPE_CHECKING:
    from shared.config import Settings


class DependencyError(CliError):
    """A server a command needs does not answer, or refuses it; exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1)


@dataclass(frozen=True)
class Dependency:
    name: str  # as people call it: PostgreSQL
    variable: str  # the setting that says where it is
    default_port: int


POSTGRES = Dependency("PostgreSQL", "DATABASE_URL", 5432)
KAFKA = Dependency("Kafka", "KAFKA_BOOTSTRAP_SERVERS", 9092)
REDIS = Dependency("Redis", "REDIS_URL", 6379)
CHROMA = Dependency("Chroma", "CHROMA_URL", 8000)
BY_VARIABLE = {d.variable: d for d in (KAFKA, POSTGRES, REDIS, CHROMA)}


def connect(data_dir: Path, *needs: Dependency) -> Settings:
    """The settings of an operator command, the local stack's in ``data_dir``
    filling what the environment leaves unset, once every server in
    ``needs`` (Chroma: only when ``CHROMA_URL`` is set) has answered."""
    sources = use(data_dir)
    settings = load_settings()
    check(settings, needs, sources.hint)
    return settings


def check(settings: Settings, needs: tuple[Dependency, ...], hint: Callable[[str], str]) -> None:
    """Raise DependencyError for the first of ``needs`` (in their order) that
    does not answer; ``hint(variable)`` says what to do about it."""
    probes = {d: _probe(d, settings) for d in needs}
    wanted = {d: p for d, p in probes.items() if p is not None}
    if not wanted:
        return
    failures = asyncio.run(_run_all(wanted, settings.dependency_timeout * 5))
    for dependency in needs:
        failure = failures.get(dependency)
        if failure is not None:
            raise DependencyError(message(dependency, settings, failure, hint))


def message(
    dependency: Dependency, settings: Settings, reason: str, hint: Callable[[str], str]
) -> str:
    where = address(dependency, _location(dependency, settings))
    said = scrubbed(reason, settings)  # the rest is ours, made without secrets
    return f"cannot connect to {dependency.name} at {where}: {said} ({hint(dependency.variable)})"


def address(dependency: Dependency, location: str) -> str:
    """``host:port`` of its URL or broker list, without user or password."""
    if dependency is KAFKA:
        return ",".join(server.strip() for server in location.split(",") if server.strip())
    return url_address(location, dependency.default_port)


def url_address(url: str, default_port: int) -> str:
    """``host:port`` of a URL, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else default_port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _location(dependency: Dependency, settings: Settings) -> str:
    return {
        POSTGRES: settings.database_url,
        KAFKA: settings.kafka_bootstrap_servers,
        REDIS: settings.redis_url,
        CHROMA: settings.chroma_url or "",
    }[dependency]


def _secrets(settings: Settings) -> list[str]:
    """Passwords that must not reach the message, as they may appear in it."""
    found = []
    for url in (settings.database_url, settings.redis_url, settings.chroma_url or ""):
        password = urlsplit(url).password
        if password:
            found += [password, unquote(password)]
    if settings.kafka_sasl_password is not None:
        found.append(settings.kafka_sasl_password.get_secret_value())
    return [secret for secret in found if secret]


# A check, given the seconds it has: raises when the server does not answer.
Probe = Callable[[float], Awaitable[None]]


def _probe(dependency: Dependency, settings: Settings) -> Probe | None:
    if dependency is POSTGRES:
        return lambda seconds: _postgres(settings.database_url, seconds)
    if dependency is KAFKA:
        return lambda seconds: _kafka(settings, seconds)
    if dependency is REDIS:
        return lambda seconds: _redis(settings.redis_url, seconds)
    if settings.chroma_url:  # unset: the embedded store, a folder
        url = settings.chroma_url
        return lambda seconds: _chroma(url, seconds)
    return None


async def _run_all(probes: dict[Dependency, Probe], seconds: float) -> dict[Dependency, str]:
    results = await asyncio.gather(*(_attempt(probe, seconds) for probe in probes.values()))
    return {d: r for d, r in zip(probes, results, strict=True) if r is not None}


async def _attempt(probe: Probe, seconds: float) -> str | None:
    """None when it answered, else why not, in a few words."""
    try:
        async with asyncio.timeout(seconds):
            await probe(seconds)
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except Exception as exc:
        return reason(exc)
    return None


def reason(exc: BaseException) -> str:
    """A few words for why a connection failed."""
    chain = list(_chain(exc))
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "unknown host"
    if any(isinstance(e, TimeoutError) for e in chain):
        return "timed out"
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text[:300] or type(exc).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


async def _postgres(url: str, seconds: float) -> None:
    import asyncpg

    from shared.storage.db import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=seconds)
    await conn.close()


async def _redis(url: str, seconds: float) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _chroma(url: str, seconds: float) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=seconds) as http:
        response = await http.get(f"{url.rstrip('/')}/api/v2/heartbeat")
    if response.status_code != 200:
        raise ConnectionError(f"it answered {response.status_code} to a heartbeat")


async def _kafka(settings: Settings, seconds: float) -> None:
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaConnectionError

    from shared.runtime.kafka import kafka_security

    client = AIOKafkaClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=int(seconds * 1000),
        **kafka_security(settings),
    )
    with _kafka_errors() as errors:
        try:
            await client.bootstrap()
        except KafkaConnectionError as exc:
            # "Unable to bootstrap from [...]": the why went to the log.
            raise errors[-1] if errors else exc from None
        finally:
            await client.close()


@contextmanager
def _kafka_errors() -> Iterator[list[BaseException]]:
    """The client's own reasons for each broker it could not reach (it logs
    them rather than raise them), kept off the terminal."""
    errors: list[BaseException] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found = [a for a in record.args or () if isinstance(a, BaseException)]
            errors.extend(found)

    logger = logging.getLogger("aiokafka")
    handler = Keep()
    propagate, level = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        yield errors
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)


def scrubbed(text: str, settings: Settings) -> str:
    """``text`` with any password of the settings, as a word, replaced by ``***``."""
    for secret in _secrets(settings):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text
