"""The topics the services create: replicated as the settings say, with
``min.insync.replicas`` on each when it is set."""

from __future__ import annotations

from shared.config import Settings
from shared.contracts.topics import Topics, _wanted

TOPICS = Topics.from_prefix("rag")


def test_topics_take_the_replication_and_the_in_sync_minimum() -> None:
    settings = Settings(kafka_replication_factor=3, kafka_min_insync_replicas=2)
    wanted = {topic.name: topic for topic in _wanted(settings, TOPICS)}
    assert len(wanted) == 10
    for topic in wanted.values():
        assert topic.replication_factor == 3
        assert topic.topic_configs["min.insync.replicas"] == "2"
    # The short-lived topics keep their retention as well.
    assert wanted["rag.chat.replies"].topic_configs["retention.ms"] == str(3600 * 1000)
    assert wanted["rag.search.requests"].topic_configs["retention.ms"] == str(3600 * 1000)


def test_without_a_minimum_the_brokers_default_applies() -> None:
    for topic in _wanted(Settings(), TOPICS):
        assert topic.replication_factor == 1
        assert "min.insync.replicas" not in topic.topic_configs
