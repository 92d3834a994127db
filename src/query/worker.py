"""The query worker's subscriptions."""

from __future__ import annotations

import structlog
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from query.answerer import AnswerPolicy, ExtractiveGenerator, Generator
from query.cancellation import Cancellations
from query.chat import ChatHandler
from query.compression import Compressor, EmbeddingCompressor, LLMCompressor
from query.evidence import EvidenceReader
from query.generation import LLMGenerator
from query.llm import ChatModel, build_chat_model
from query.pipeline import RetrievalPipeline
from query.rerank.base import Reranker
from query.rerank.cross_encoder import CrossEncoderReranker
from query.rerank.fused import RetrievalFused
from query.rerank.llm import LLMReranker
from query.rerank.mmr import MMRReranker
from query.retrieval import QueryEmbeddings, Retriever
from query.search import SearchHandler
from shared.adapters.onnx_models import MS_MARCO_MINILM_L12, OnnxTextModel
from shared.config import Settings
from shared.contracts.events import ChatCancel, ChatRequest, SearchRequest
from shared.runtime.clients import Clients
from shared.runtime.consumer import Consumer
from shared.runtime.worker import BackgroundJob, run_worker

log = structlog.get_logger(__name__)

# Per passage: compression keeps a few sentences, not a summary.
COMPRESSION_MAX_SENTENCES = 4
_COMMIT_INTERVAL_MS = 1000


def subscribe_cancels(clients: Clients, cancellations: Cancellations) -> None:
    # No group: every worker must hear every cancel, from now on.
    subscriber = clients.broker.subscriber(
        clients.topics.chat_cancel, auto_offset_reset="latest", ack_policy=AckPolicy.ACK_FIRST
    )

    @subscriber
    async def on_cancel(msg: KafkaMessage) -> None:
        try:
            cancel = ChatCancel.model_validate_json(msg.body)
        except ValidationError:
            log.warning("Ignoring malformed cancel", message_id=msg.message_id)
            return
        cancellations.cancel(cancel)


def build_rerankers(
    settings: Settings, clients: Clients, model: ChatModel | None, scorer: OnnxTextModel
) -> dict[str, Reranker]:
    cross_encoder: Reranker = CrossEncoderReranker(scorer, max_chars=settings.rerank_max_chars)
    if settings.rerank_fusion:
        cross_encoder = RetrievalFused(cross_encoder, settings.rrf_k)
    rerankers: dict[str, Reranker] = {
        "mmr": MMRReranker(clients.require_embedder(), settings.mmr_lambda, clients.vectors),
        "cross-encoder": cross_encoder,
    }
    if model is not None:
        rerankers["llm"] = LLMReranker(model, max_chars=settings.rerank_max_chars)
    return rerankers


def build_pipeline(
    clients: Clients, model: ChatModel | None, scorer: OnnxTextModel
) -> RetrievalPipeline:
    settings = clients.settings
    compressor: Compressor = (
        LLMCompressor(model)
        if model is not None
        else EmbeddingCompressor(
            clients.require_embedder(),
            threshold=settings.compression_threshold,
            max_sentences=COMPRESSION_MAX_SENTENCES,
        )
    )
    embeddings = QueryEmbeddings(
        clients.require_embedder(), clients.redis, settings.cache_ttl_seconds
    )
    return RetrievalPipeline(
        retriever=Retriever(embeddings, clients.vectors, clients.lexical, rrf_k=settings.rrf_k),
        rerankers=build_rerankers(settings, clients, model, scorer),
        compressor=compressor,
        model=model,
        candidates=settings.retrieval_candidates,
        rerank_candidates=settings.rerank_candidates,
        memory_turns=settings.memory_turns,
    )


def build_generator(settings: Settings, model: ChatModel | None) -> Generator:
    if model is not None:
        return LLMGenerator(model, max_tokens=settings.llm_max_tokens)
    return ExtractiveGenerator(
        AnswerPolicy(
            min_relevance=settings.answer_min_relevance, max_quotes=settings.answer_max_quotes
        )
    )


async def subscribe(clients: Clients) -> list[BackgroundJob]:
    settings = clients.settings
    cancellations = Cancellations()
    model = build_chat_model(settings)
    # One copy of the cross-encoder (loaded and hash-checked now, so a
    # misinstalled worker fails at start-up): the reranker and the relevance
    # gate both read with it.
    scorer = OnnxTextModel.load(MS_MARCO_MINILM_L12)
    pipeline = build_pipeline(clients, model, scorer)
    handler = ChatHandler(
        clients=clients,
        pipeline=pipeline,
        generator=build_generator(settings, model),
        cancellations=cancellations,
        reader=EvidenceReader(scorer, max_pairs=settings.answer_scored_sentences),
        answer_ungrounded=model is not None and settings.llm_answer_ungrounded,
    )
    consumer = Consumer(
        broker=clients.broker,
        topic=clients.topics.chat_requests,
        group_id=f"{clients.settings.kafka_topic_prefix}.query",
        model=ChatRequest,
        handle=handler.handle,
    )
    subscribe_requests(clients, consumer)
    subscribe_cancels(clients, cancellations)
    subscribe_searches(clients, SearchHandler(clients, pipeline))
    return []


def subscribe_searches(clients: Clients, handler: SearchHandler) -> None:
    """Searches in a group of their own, on their own topic: a chat
    backlog never delays one, and a worker without this code never sees one."""
    consumer = Consumer(
        broker=clients.broker,
        topic=clients.topics.search_requests,
        group_id=f"{clients.settings.kafka_topic_prefix}.search",
        model=SearchRequest,
        handle=handler.handle,
    )
    subscribe_requests(clients, consumer)


def subscribe_requests(
    clients: Clients, consumer: Consumer[ChatRequest] | Consumer[SearchRequest]
) -> None:
    # Offsets are committed as requests are taken (not answered), every
    # second: a client is waiting with a deadline, so a crash should replay
    # little. What it does replay is claimed per stream (query.claims), so a
    # request that was being answered is skipped, one never started answered.
    subscriber = clients.broker.subscriber(
        consumer.topic,
        group_id=consumer.group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK_FIRST,
        max_workers=clients.settings.query_concurrency,
        auto_commit_interval_ms=_COMMIT_INTERVAL_MS,
    )

    @subscriber
    async def on_request(msg: KafkaMessage) -> None:
        await consumer(msg.body, msg.raw_message)


async def run(settings: Settings) -> None:
    await run_worker(settings, "query", subscribe)
