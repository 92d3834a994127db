"""Kafka SASL and TLS: a second, real Apache Kafka whose client listeners
are SASL_PLAINTEXT and SASL_SSL with PLAIN users (no plaintext listener). A
gateway and a query worker configured with the right credentials answer a
chat through it (every Kafka client of the project: topic admin, FastStream
producer and consumers, the gateway's reply consumer, the worker's lag
sampler, `rag dlq`); with a wrong password, or none, they stop at start-up
with the reason, instead of hanging. Over SASL_SSL, clients that trust the
test CA (KAFKA_SSL_CAFILE) get through; those that do not are refused."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ragstream.localstack.kafka import KafkaService
from ragstream.localstack.ports import HOST, free_port_pair, free_ports
from shared.config import Settings
from shared.contracts.events import IngestStatus
from shared.contracts.topics import Topics, ensure_topics
from shared.runtime.kafka import create_broker, kafka_security, publish
from tests.support.api import new_user, stream_chat
from tests.support.processes import start, start_gateway, start_worker

PASSWORD = "rag-secret"
_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required"
    ' username="broker" password="broker-secret"'
    ' user_broker="broker-secret" user_rag="' + PASSWORD + '";'
)


def _sasl_env(bootstrap: str, password: str | None) -> dict[str, str]:
    if password is None:
        return {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "rag",
        "KAFKA_SASL_PASSWORD": password,
    }


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _test_ca(folder: Path) -> tuple[Path, Path]:
    """A CA of the test's own and a broker certificate for 127.0.0.1 it
    signed: (the CA's PEM, the broker's key and certificate as one PEM)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        _certificate("ragstream test CA", ca_key)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ragstream test CA")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        _certificate(HOST, key)
        .issuer_name(ca.subject)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, keystore = folder / "ca.pem", folder / "broker.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    unencrypted = serialization.NoEncryption()
    keystore.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, unencrypted
        )
        + server.public_bytes(serialization.Encoding.PEM)
    )
    return ca_file, keystore


@dataclass(frozen=True)
class SecuredKafka:
    sasl: str  # SASL_PLAINTEXT bootstrap
    sasl_ssl: str  # SASL_SSL bootstrap
    ca_file: Path


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    home = tmp_path_factory.mktemp("sasl-kafka")
    ca_file, keystore = _test_ca(home)
    port, tls = free_port_pair(), free_ports(1)[0]
    controller = port + 1
    properties = {
        "listeners": f"SASL_PLAINTEXT://{HOST}:{port},SASL_SSL://{HOST}:{tls},"
        f"CONTROLLER://{HOST}:{controller}",
        "advertised.listeners": f"SASL_PLAINTEXT://{HOST}:{port},SASL_SSL://{HOST}:{tls}",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
        "CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": _JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": _JAAS,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
    }
    bootstrap = f"{HOST}:{port}"
    broker = KafkaService(
        home,
        port,
        controller,
        extra_properties=properties,
        client_security=kafka_security(_settings(_sasl_env(bootstrap, PASSWORD))),
    )
    broker.start()
    try:
        yield SecuredKafka(bootstrap, f"{HOST}:{tls}", ca_file)
    finally:
        broker.stop()


def _settings(env: dict[str, str]) -> Settings:
    return Settings(**{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]


@pytest.fixture
def sasl_app_env(app_env: dict[str, str], sasl_kafka: SecuredKafka) -> dict[str, str]:
    return {
        **app_env,
        **_sasl_env(sasl_kafka.sasl, PASSWORD),
        "KAFKA_TOPIC_PREFIX": f"sasl-{uuid.uuid4().hex[:8]}",
    }


async def test_a_chat_round_trip_over_sasl(sasl_app_env: dict[str, str], log_dir: Path) -> None:
    worker = start_worker("query", sasl_app_env, log_dir, name="sasl-query-worker")
    gateway = start_gateway("sasl-gateway", sasl_app_env, log_dir)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
            user = await new_user(client, "sasl")
            response, events = await stream_chat(client, user, {"message": "hello over SASL?"})
        assert response.status_code == 200
        assert events[-1].event == "done", [e.event for e in events]
        # aiokafka's word that both spoke SASL PLAIN (over plaintext, as configured).
        for component in (worker, gateway):
            assert "Sending username and password in the clear" in component.log()
    finally:
        gateway.stop()
        worker.stop()
    # The operator's tool too: `rag dlq list` reads the dead-letter topics.
    listed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ragstream", "dlq", "list"],
        env={**os.environ, **sasl_app_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "0 letters" in listed.stdout


@pytest.mark.parametrize("password", ["wrong-password", None], ids=["wrong", "none"])
def test_wrong_credentials_stop_a_process_at_once(
    sasl_app_env: dict[str, str], log_dir: Path, password: str | None
) -> None:
    env = {**sasl_app_env, **_sasl_env(sasl_app_env["KAFKA_BOOTSTRAP_SERVERS"], password)}
    started = time.monotonic()
    name = f"sasl-gateway-{uuid.uuid4().hex[:6]}"
    with pytest.raises(RuntimeError, match="exited"):
        start_gateway(name, env, log_dir)
    assert "Cannot connect to Kafka" in (log_dir / f"{name}.log").read_text()
    worker = start(f"sasl-worker-{uuid.uuid4().hex[:6]}", ["worker", "query"], env, log_dir)
    try:
        assert worker.process.wait(timeout=60) != 0
    finally:
        worker.kill()
    assert "Cannot connect to Kafka" in worker.log()
    if password is not None:
        assert "Authentication failed" in worker.log()
        assert password not in worker.log()
    assert time.monotonic() - started < 90, "took as long as a hang"


def _tls_settings(kafka: SecuredKafka, *, trusted: bool) -> Settings:
    env = {
        **_sasl_env(kafka.sasl_ssl, PASSWORD),
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_TOPIC_PREFIX": f"tls-{uuid.uuid4().hex[:8]}",
    }
    if trusted:
        env["KAFKA_SSL_CAFILE"] = str(kafka.ca_file)
    return _settings(env)


async def test_a_round_trip_over_sasl_ssl(sasl_kafka: SecuredKafka) -> None:
    settings = _tls_settings(sasl_kafka, trusted=True)
    topics = Topics.from_prefix(settings.kafka_topic_prefix)
    await ensure_topics(settings, topics)
    broker = create_broker(settings, "tls-test")
    await broker.start()
    try:
        event = IngestStatus(
            correlation_id="tls-round-trip",
            tenant_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            document_id=uuid.uuid4(),
            status="indexed",
        )
        await publish(broker, topics.ingest_events, event)
    finally:
        await broker.stop()
    consumer = AIOKafkaConsumer(
        topics.ingest_events,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        **kafka_security(settings),
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert IngestStatus.model_validate_json(record.value) == event


async def test_a_broker_certificate_not_trusted_is_refused(
    sasl_kafka: SecuredKafka, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _tls_settings(sasl_kafka, trusted=False)  # the system's CAs only
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(
            ensure_topics(settings, Topics.from_prefix(settings.kafka_topic_prefix)), 30
        )
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


def test_sasl_without_its_settings_stops_at_start_up() -> None:
    incomplete = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="rag")
    with pytest.raises(RuntimeError, match="KAFKA_SASL_MECHANISM"):
        kafka_security(incomplete)
    scram = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="rag",
        kafka_sasl_password="secret",  # type: ignore[arg-type]
    )
    assert kafka_security(scram) == {
        "security_protocol": "SASL_PLAINTEXT",
        "ssl_context": None,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "rag",
        "sasl_plain_password": "secret",
    }
    assert kafka_security(Settings()) == {}
