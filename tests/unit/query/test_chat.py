"""What the answer cache's key is made of, and what a chat request from Kafka
is trusted with (query.chat)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from query.cancellation import Cancellations
from query.chat import ANSWER_SETTINGS, ChatHandler, answer_settings
from shared.config import STREAM_TIMEOUT_MAX, Settings
from shared.contracts.events import ChatRequest, ReplyTo
from shared.contracts.topics import Topics
from shared.errors import InvalidInput
from shared.runtime.clients import Clients

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
    "answer_min_relevance": 1.5,
    "answer_max_quotes": 2,
    "answer_scored_sentences": 40,
    "llm_answer_ungrounded": True,
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


def _handler() -> ChatHandler:
    clients = cast(Clients, SimpleNamespace(topics=Topics.from_prefix("prod")))
    return ChatHandler(clients, cast(Any, None), cast(Any, None), Cancellations(), cast(Any, None))


def _request(deadline: datetime, reply_topic: str | None) -> ChatRequest:
    reply_to = ReplyTo(topic=reply_topic, partition=0) if reply_topic else None
    return ChatRequest(
        correlation_id="c",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message="hello",
        deadline=deadline,
        reply_to=reply_to,
    )


@pytest.mark.parametrize(
    "topic", ["prod.chat.replies.evil", "staging.chat.replies", "prod.ingest.events"]
)
def test_replies_only_go_to_this_deployments_reply_topic(topic: str) -> None:
    request = _request(datetime.now(UTC) + timedelta(seconds=30), topic)
    with pytest.raises(
        InvalidInput, match=re.escape("not this deployment's reply topic 'prod.chat.replies'")
    ):
        _handler()._trusted(request)


def test_a_far_deadline_is_capped_at_the_longest_stream() -> None:
    now = datetime.now(UTC)
    far = _handler()._trusted(_request(now + timedelta(days=365), "prod.chat.replies"))
    assert now < far.deadline <= datetime.now(UTC) + timedelta(seconds=STREAM_TIMEOUT_MAX)
    near = _request(now + timedelta(seconds=20), None)
    assert _handler()._trusted(near) is near  # within bounds: as sent
