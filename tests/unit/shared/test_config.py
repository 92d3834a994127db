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


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"BLOB_STORE": "s3"}, "BLOB_S3_BUCKET"),
        (
            {"BLOB_STORE": "s3", "BLOB_S3_BUCKET": "docs", "BLOB_S3_ACCESS_KEY_ID": "AKIA"},
            "go together",
        ),
        (
            {"BLOB_STORE": "s3", "BLOB_S3_BUCKET": "docs", "BLOB_S3_KMS_KEY_ID": "alias/x"},
            "BLOB_S3_SSE=aws:kms",
        ),
        ({"BLOB_STORE": "s3", "BLOB_S3_BUCKET": "docs", "BLOB_S3_SSE": "aes"}, "blob_s3_sse"),
        ({"BLOB_STORE": "gcs"}, "blob_store"),
        ({"BLOB_STORE": "s3", "BLOB_S3_BUCKET": "docs", "BLOB_S3_PART_MB": "4"}, "part_mb"),
    ],
)
def test_an_incomplete_s3_blob_store_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_s3_blob_store_settings_are_read_and_secrets_kept_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BLOB_STORE", "s3")
    monkeypatch.setenv("BLOB_S3_BUCKET", "docs")
    monkeypatch.setenv("BLOB_S3_PREFIX", "prod/ragstream")
    monkeypatch.setenv("BLOB_S3_SSE", "aws:kms")
    monkeypatch.setenv("BLOB_S3_KMS_KEY_ID", "alias/rag")
    monkeypatch.setenv("BLOB_S3_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("BLOB_S3_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")
    settings = Settings()
    assert (settings.blob_store, settings.blob_s3_bucket) == ("s3", "docs")
    assert settings.blob_s3_secret_access_key is not None
    assert settings.blob_s3_secret_access_key.get_secret_value() == "wJalrXUtnFEMI"
    assert "wJalrXUtnFEMI" not in repr(settings) and "AKIAEXAMPLE" not in repr(settings)


def test_list_settings_read_the_same_from_the_environment_and_as_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNC_ROOTS", '["/srv/shares"]')
    from_env = Settings()
    as_value = Settings(sync_roots='["/srv/shares"]', cors_origins='["https://a.example"]')
    assert from_env.sync_roots == as_value.sync_roots == [Path("/srv/shares")]
    assert as_value.cors_origins == ["https://a.example"]
    with pytest.raises(ValidationError):
        Settings(sync_roots="/srv/shares")  # not a JSON list
