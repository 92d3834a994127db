"""The one settings object: every knob, read from the environment.

Names follow the operations runbook where it names them (SECRET_KEY,
DATABASE_URL, REDIS_URL, RAG_USE_CACHE, RETRIEVAL_TOP_K, ...). Each service
builds a ``Settings`` once at start-up and hands it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOP_K_MAX = 50
STREAM_TIMEOUT_MAX = 300.0

RetrievalMode = Literal["dense", "lexical", "hybrid"]
RerankingMethod = Literal["none", "cross-encoder", "mmr", "llm"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # --- identity -----------------------------------------------------------
    secret_key: SecretStr | None = Field(default=None, description="HS256 key for JWTs")
    secret_key_previous: SecretStr | None = Field(
        default=None, description="Previous key, still accepted while tokens signed with it live"
    )
    access_token_expire_minutes: int = Field(default=30, ge=1, le=24 * 60)
    refresh_token_expire_days: int = Field(default=7, ge=1, le=90)
    token_audience: str = Field(
        default="ragstream", min_length=1, description="`aud` of access tokens, checked"
    )
    allow_registration: bool = Field(
        default=False,
        description="Anyone may create an account (and a tenant of their own);"
        " `rag up` turns it on for local use",
    )

    # --- abuse limits -----------------------------------------------------------
    login_attempts_per_minute: int = Field(
        default=10, ge=1, le=10_000, description="Per client IP and per username (login, register)"
    )
    requests_per_minute: int = Field(default=600, ge=1, le=1_000_000, description="Per user")
    max_concurrent_streams: int = Field(default=4, ge=1, le=1000, description="Per user")
    password_hash_concurrency: int = Field(
        default=2, ge=1, le=64, description="Argon2 hashes at once per process (64 MiB each)"
    )
    max_json_body_kb: int = Field(default=64, ge=1, le=10_240)
    tenant_max_documents: int = Field(default=10_000, ge=1)
    tenant_max_mb: int = Field(default=10_240, ge=1, description="Uploaded bytes per tenant")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser"
    )

    # --- infrastructure -------------------------------------------------------
    database_url: str = "postgresql://rag:rag@127.0.0.1:5432/rag"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = Field(default="rag", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    kafka_request_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_reply_partitions: int = Field(default=8, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for the brokers")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS)")
    kafka_ssl_keyfile: Path | None = None
    kafka_enable_idempotence: bool = Field(
        default=True, description="Exactly-once produce per partition (tansu lacks it)"
    )
    gateway_reply_partition: int | None = Field(
        default=None, ge=0, description="Pin this gateway to one reply partition (else leased)"
    )
    chroma_url: str | None = Field(default=None, description="Chroma server, e.g. http://h:8001")
    chroma_path: Path = Path(".rag/chroma")
    blob_dir: Path = Path(".rag/blobs")
    dependency_timeout: float = Field(default=2.0, gt=0, le=30)

    # --- ingestion ------------------------------------------------------------
    max_upload_mb: int = Field(default=50, ge=1, le=10_000)
    chunk_size: int = Field(default=800, ge=100, le=8000)
    chunk_overlap: int = Field(default=120, ge=0, le=2000)
    ingest_max_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Deliveries of one document that end with no outcome (the worker died)"
        " before it is marked failed; counted on the document row",
    )
    ingest_retry_max_seconds: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait between retries of a transient error"
    )
    ingest_max_document_seconds: int = Field(
        default=3600,
        ge=60,
        le=24 * 3600,
        description="Longest one document may take before Kafka hands it to another worker",
    )
    ingest_stuck_seconds: int = Field(
        default=900, ge=10, description="A document queued or processing this long is re-queued"
    )
    ingest_sweep_seconds: int = Field(
        default=60, ge=0, description="How often a worker looks for stuck documents (0: never)"
    )
    reconcile_interval_seconds: int = Field(
        default=3600, ge=0, description="How often orphaned blobs and rows are removed (0: never)"
    )
    reconcile_min_age_seconds: int = Field(
        default=3600, ge=60, description="Blobs and rows younger than this are never reconciled"
    )

    # --- embeddings -------------------------------------------------------------
    embedding_provider: Literal["onnx", "hashing", "openai", "bedrock"] = Field(
        default="onnx",
        description="onnx: bge-small-en in a wheel, offline; hashing: not semantic, for tests",
    )
    embedding_model: str | None = Field(
        default=None,
        description="Model name for openai (text-embedding-3-small) or bedrock "
        "(amazon.titan-embed-text-v2:0, cohere.embed-english-v3)",
    )
    embedding_dim: int = Field(
        default=384,
        ge=32,
        le=4096,
        description="Vector size of the hashing embedder, and of provider models not known by name",
    )
    embedding_batch_size: int = Field(default=32, ge=1, le=1024)

    # --- LLM providers ------------------------------------------------------------
    llm_provider: Literal["extractive", "openai", "bedrock"] = Field(
        default="extractive",
        description="extractive: offline, quotes the best passages; openai/bedrock: generative",
    )
    llm_model: str | None = Field(
        default=None, description="Chat model name (openai) or model id (bedrock)"
    )
    llm_temperature: float = Field(default=0.1, ge=0, le=2)
    llm_max_tokens: int = Field(default=800, ge=16, le=32_000)
    llm_timeout: float = Field(default=60.0, gt=0, le=600)
    openai_base_url: str | None = Field(
        default=None, description="Any OpenAI-compatible server: vLLM, Ollama, llama.cpp, TGI"
    )
    openai_api_key: SecretStr | None = None
    aws_region: str | None = Field(default=None, description="Bedrock region (else boto3's own)")
    bedrock_endpoint_url: str | None = None

    # --- retrieval and answering ---------------------------------------------
    retrieval_top_k: int = Field(default=5, ge=1, le=TOP_K_MAX)
    retrieval_mode: RetrievalMode = "hybrid"
    retrieval_candidates: int = Field(
        default=30, ge=1, le=500, description="Candidates each retriever brings to fusion"
    )
    rrf_k: int = Field(default=60, ge=1, le=1000, description="Reciprocal rank fusion constant")
    reranking_method: RerankingMethod = "none"
    rerank_candidates: int = Field(default=20, ge=1, le=200)
    rerank_max_chars: int = Field(default=1200, ge=100, le=8000)
    mmr_lambda: float = Field(default=0.7, ge=0, le=1)
    rag_use_hyde: bool = False
    rag_use_compression: bool = False
    compression_threshold: float = Field(
        default=0.6,
        ge=-1,
        le=1,
        description="Offline compression keeps sentences at least this similar to the question",
    )
    memory_turns: int = Field(
        default=3, ge=0, le=20, description="Past exchanges used to rewrite a follow-up question"
    )
    rag_use_cache: bool = False
    cache_ttl_seconds: int = Field(default=3600, ge=1)
    stream_timeout: float = Field(default=30.0, gt=0, le=STREAM_TIMEOUT_MAX)
    query_concurrency: int = Field(default=8, ge=1, le=256)
    token_coalesce_words: int = Field(default=6, ge=1, le=200)
    stream_queue_size: int = Field(
        default=256,
        ge=8,
        le=100_000,
        description="Reply events buffered per stream before it is cut",
    )
    sse_send_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A client that takes longer to accept an event is cut",
    )
    shutdown_grace_seconds: float = Field(
        default=20.0, ge=0, le=600, description="On SIGTERM, how long open streams may finish"
    )

    # --- observability --------------------------------------------------------
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _generator_for_generative_steps(self) -> Settings:
        # Said at start-up, once, rather than as a 400 on every question.
        wanted = [
            name
            for name, on in (
                ("RAG_USE_HYDE=true", self.rag_use_hyde),
                ("RERANKING_METHOD=llm", self.reranking_method == "llm"),
            )
            if on
        ]
        if wanted and not self.has_generator:
            raise ValueError(
                f"{' and '.join(wanted)} need a generative model: set LLM_PROVIDER"
                " (openai or bedrock)"
            )
        return self

    @property
    def has_generator(self) -> bool:
        """HyDE, LLM reranking and LLM compression need a generative model."""
        return self.llm_provider != "extractive"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024
