from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.config import Settings


def test_runbook_names_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRIEVAL_TOP_K", "15")
    monkeypatch.setenv("RAG_USE_CACHE", "true")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/rag")
    settings = Settings()
    assert settings.retrieval_top_k == 15
    assert settings.rag_use_cache is True
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.database_url.endswith("@db:5432/rag")


@pytest.mark.parametrize(
    ("name", "value"),
    [("RETRIEVAL_TOP_K", "0"), ("RETRIEVAL_TOP_K", "500"), ("STREAM_TIMEOUT", "-1")],
)
def test_out_of_bounds_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(("name", "value"), [("RAG_USE_HYDE", "true"), ("RERANKING_METHOD", "llm")])
def test_generative_steps_without_a_generator_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="LLM_PROVIDER"):
        Settings()
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    assert Settings().has_generator


@pytest.mark.parametrize("variable", ["LLM_PROVIDER", "EMBEDDING_PROVIDER"])
def test_bedrock_without_a_region_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv(variable, "bedrock")
    with pytest.raises(ValidationError, match="Bedrock needs a region: set AWS_REGION"):
        Settings()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert getattr(Settings(), variable.lower()) == "bedrock"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert Settings().aws_region == "eu-central-1"


def test_min_insync_replicas_beyond_the_replication_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Else every acks=all write would be refused with NOT_ENOUGH_REPLICAS.
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(ValidationError, match="cannot exceed KAFKA_REPLICATION_FACTOR"):
        Settings()
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    assert Settings().kafka_min_insync_replicas == 2
