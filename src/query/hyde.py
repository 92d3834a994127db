"""HyDE (hypothetical document embeddings): a question and the passage that
answers it are worded differently, so the dense search embeds a made-up
answer, phrased as documentation would phrase it, along with the question.
The passage is only a search key: it is never shown or cited."""

from __future__ import annotations

from query.llm.base import ChatModel
from query.prompts import hyde_messages
from shared.errors import Unavailable


async def hypothetical_passage(question: str, model: ChatModel, max_tokens: int = 200) -> str:
    """A short passage that would answer ``question``. Raises ``Unavailable``
    when the model fails or writes nothing: the caller picks the fallback."""
    passage = await model.complete(hyde_messages(question), max_tokens=max_tokens)
    passage = passage.strip()
    if not passage:
        raise Unavailable(f"chat model {model.name!r} wrote no HyDE passage")
    return passage
