"""Clients for the paid model providers, built once from settings, and the one
place their errors become ``Unavailable`` (never with a key in the message)."""

from __future__ import annotations

from typing import Any

from openai import APIError, APIStatusError, AsyncOpenAI

from shared.config import Settings
from shared.errors import Unavailable

# OpenAI's client insists on a key; local servers (vLLM, Ollama) ignore it.
_NO_KEY = "not-needed"


def openai_client(settings: Settings) -> AsyncOpenAI:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else _NO_KEY
    return AsyncOpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        timeout=settings.llm_timeout,
        max_retries=2,
    )


def openai_error(exc: APIError) -> Unavailable:
    status = f" (HTTP {exc.status_code})" if isinstance(exc, APIStatusError) else ""
    return Unavailable(f"the OpenAI-compatible server failed: {type(exc).__name__}{status}")


def bedrock_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        region_name=settings.aws_region,
        endpoint_url=settings.bedrock_endpoint_url,
        config=Config(
            read_timeout=settings.llm_timeout,
            connect_timeout=min(settings.llm_timeout, 10),
            retries={"max_attempts": 3, "mode": "adaptive"},
        ),
    )


def bedrock_error(exc: Exception) -> Unavailable:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    detail = f" ({code})" if code else ""
    return Unavailable(f"AWS Bedrock failed: {type(exc).__name__}{detail}")
