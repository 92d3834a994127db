"""Prometheus metrics of the query worker."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CHAT_REQUESTS = Counter("rag_chat_requests_total", "Chat requests by outcome", ["outcome"])
FIRST_TOKEN_SECONDS = Histogram(
    "rag_chat_first_token_seconds", "From request creation to the first token sent"
)
GENERATIONS_STOPPED = Counter(
    "rag_chat_generations_stopped_total",
    "Generations stopped part-way because a cancel arrived, by its reason",
    ["reason"],
)
ANSWER_CACHE = Counter(
    "rag_chat_answer_cache_total",
    "Answer cache look-ups of cacheable questions; hit / (hit + miss) is the hit ratio",
    ["result"],
)
CLAIMS_UNAVAILABLE = Counter(
    "rag_chat_claims_unavailable_total",
    "Requests answered without claiming their stream first, because Redis failed",
)
ANSWERS = Counter(
    "rag_chat_answers_total",
    "Answers sent, by whether they cite the documents (grounded) or say the documents"
    " do not answer (not_found)",
    ["result"],
)
RELEVANCE = Histogram(
    "rag_chat_best_relevance",
    "The cross-encoder score of the best sentence found for each question (the"
    " relevance gate compares it with ANSWER_MIN_RELEVANCE)",
    buckets=(-10, -8, -6, -4, -2, -1, 0, 1, 2, 4, 6, 8, 10),
)
SEARCH_REQUESTS = Counter(
    "rag_search_requests_total",
    "Search requests (POST /api/search) by outcome: answered, refused, failed, expired",
    ["outcome"],
)
