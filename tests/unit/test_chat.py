"""What the answer cache's key is made of (query.chat)."""

from __future__ import annotations

import pytest

from query.chat import ANSWER_SETTINGS, answer_settings
from shared.config import Settings

CHANGED = {
    "embedding_provider": "hashing",
    "embedding_model": "another-model",
    "embedding_dim": 256,
    "llm_provider": "openai",
    "llm_model": "another-llm",
    "llm_temperature": 0.9,
    "llm_max_tokens": 17,
    "openai_base_url": "http://127.0.0.1:1/v1",
    "retrieval_candidates": 7,
    "rrf_k": 3,
    "rerank_candidates": 33,
    "rerank_fusion": False,
    "rerank_max_chars": 300,
    "mmr_lambda": 0.2,
    "compression_threshold": 0.99,
}


def test_every_answer_setting_is_a_setting_and_is_exercised() -> None:
    assert set(ANSWER_SETTINGS) <= set(Settings.model_fields)
    assert set(CHANGED) == set(ANSWER_SETTINGS)


@pytest.mark.parametrize(("name", "value"), sorted(CHANGED.items()))
def test_a_changed_answer_setting_changes_the_key(name: str, value: object) -> None:
    settings = Settings()
    assert getattr(settings, name) != value
    assert answer_settings(settings.model_copy(update={name: value})) != answer_settings(settings)


@pytest.mark.parametrize(
    ("name", "value"), [("log_level", "DEBUG"), ("requests_per_minute", 7), ("metrics_port", 1)]
)
def test_settings_that_do_not_shape_answers_leave_the_key(name: str, value: object) -> None:
    settings = Settings()
    assert answer_settings(settings.model_copy(update={name: value})) == answer_settings(settings)


def test_secrets_never_enter_the_key() -> None:
    settings = Settings(openai_api_key="sk-never-in-a-key")  # type: ignore[call-arg]
    assert "sk-never" not in answer_settings(settings)
