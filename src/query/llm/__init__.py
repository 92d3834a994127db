"""Chat models behind one interface, chosen by ``LLM_PROVIDER``:
``openai`` (any OpenAI-compatible server), ``bedrock`` (AWS Converse), or
none (the offline extractive answerer)."""

from query.llm.base import ChatModel, Message, Role
from query.llm.factory import build_chat_model

__all__ = ["ChatModel", "Message", "Role", "build_chat_model"]
