"""Finding the caller's most relevant chunks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from shared.embeddings import Embedder
from shared.vectorstore import Hit, VectorStore


@dataclass
class Retriever:
    embedder: Embedder
    vectors: VectorStore

    async def retrieve(self, tenant_id: UUID, user_id: UUID, question: str, k: int) -> list[Hit]:
        [embedding] = await asyncio.to_thread(self.embedder.embed, [question])
        return await self.vectors.search(tenant_id, user_id, embedding, k)
