"""The one settings object: every knob, read from the environment.

Names follow the operations runbook where it names them (SECRET_KEY,
DATABASE_URL, REDIS_URL, RAG_USE_CACHE, RETRIEVAL_TOP_K, ...). Each service
builds a ``Settings`` once at start-up and hands it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOP_K_MAX = 50
STREAM_TIMEOUT_MAX = 300.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # --- identity -----------------------------------------------------------
    secret_key: SecretStr | None = Field(default=None, description="HS256 key for JWTs")
    secret_key_previous: SecretStr | None = Field(
        default=None, description="Previous key, still accepted while tokens signed with it live"
    )
    access_token_expire_minutes: int = Field(default=30, ge=1, le=24 * 60)
    refresh_token_expire_days: int = Field(default=7, ge=1, le=90)

    # --- infrastructure -------------------------------------------------------
    database_url: str = "postgresql://rag:rag@127.0.0.1:5432/rag"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = Field(default="rag", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    kafka_request_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_reply_partitions: int = Field(default=8, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10)
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
    embedding_provider: Literal["hashing"] = "hashing"
    embedding_dim: int = Field(default=384, ge=32, le=4096)
    ingest_max_attempts: int = Field(default=3, ge=1, le=20)

    # --- retrieval and answering ---------------------------------------------
    retrieval_top_k: int = Field(default=5, ge=1, le=TOP_K_MAX)
    rag_use_cache: bool = False
    cache_ttl_seconds: int = Field(default=3600, ge=1)
    stream_timeout: float = Field(default=30.0, gt=0, le=STREAM_TIMEOUT_MAX)
    query_concurrency: int = Field(default=8, ge=1, le=256)
    token_coalesce_words: int = Field(default=6, ge=1, le=200)

    # --- observability --------------------------------------------------------
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024
