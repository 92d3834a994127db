"""The one place that turns settings into a chat model (or none)."""

from __future__ import annotations

from query.llm.base import ChatModel
from shared.config import Settings


def build_chat_model(settings: Settings) -> ChatModel | None:
    """``None`` for the offline extractive answerer, which needs no model."""
    match settings.llm_provider:
        case "extractive":
            return None
        case "openai":
            from query.llm.openai import OpenAIChatModel

            return OpenAIChatModel.from_settings(settings)
        case "bedrock":
            from query.llm.bedrock import BedrockChatModel

            return BedrockChatModel.from_settings(settings)
