"""Prometheus metrics of the query worker."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CHAT_REQUESTS = Counter("rag_chat_requests_total", "Chat requests by outcome", ["outcome"])
FIRST_TOKEN_SECONDS = Histogram(
    "rag_chat_first_token_seconds", "From request creation to the first token sent"
)
