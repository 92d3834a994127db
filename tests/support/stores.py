"""Looking into the vector store from a test, over Chroma's HTTP API, the
way an operator would: no project code in between."""

from __future__ import annotations

from collections import Counter

import httpx

CHROMA_COLLECTIONS = "/api/v2/tenants/default_tenant/databases/default_database/collections"
_PAGE = 5000


async def vectors_per_document(chroma_url: str, ids: list[str]) -> Counter[str]:
    """Vectors per document id, over every chunk collection; fails on a
    duplicated vector id."""
    per_doc: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=chroma_url, timeout=120) as chroma:
        collections = (await chroma.get(CHROMA_COLLECTIONS)).json()
        for collection in collections:
            if not collection["name"].startswith("chunks"):
                continue
            seen: set[str] = set()
            # In pages: Chroma refuses metadata for tens of thousands of ids at once.
            while True:
                response = await chroma.post(
                    f"{CHROMA_COLLECTIONS}/{collection['id']}/get",
                    json={
                        "where": {"document_id": {"$in": ids}},
                        "include": ["metadatas"],
                        "limit": _PAGE,
                        "offset": len(seen),
                    },
                )
                assert response.status_code == 200, response.text
                found = response.json()
                assert not seen & set(found["ids"]) and len(set(found["ids"])) == len(found["ids"])
                seen.update(found["ids"])
                per_doc.update(str(m["document_id"]) for m in found["metadatas"])
                if len(found["ids"]) < _PAGE:
                    break
    return per_doc
