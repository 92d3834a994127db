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
