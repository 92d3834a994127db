"""Indexing one document: the steps between a claim check and ``indexed``.

A document is reported ``indexed`` only after its chunks are in the vector
store, so anything that reads the status can already search it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass

import asyncpg
import structlog

from ingest.chunking import Piece, chunk_id
from ingest.loaders import ParseLimits
from ingest.parse import parse
from ingest.parser_pool import ParserPool
from shared.config import Settings
from shared.contracts.events import DocumentStatus, IngestRequest, IngestStatus
from shared.errors import NotFound, RagError, UnsupportedDocument
from shared.runtime.clients import Clients
from shared.runtime.kafka import publish
from shared.storage import documents
from shared.storage.documents import Visibility
from shared.storage.lexical import IndexedChunk
from shared.storage.vectorstore import Chunk
from shared.text import in_context

log = structlog.get_logger(__name__)

# Chunks embedded and stored together: bounds the vectors held in memory.
STORE_BATCH = 256


class TooManyAttempts(RagError):
    """Permanent: the document has used up its deliveries."""

    code = "too_many_attempts"


def parse_limits(settings: Settings) -> ParseLimits:
    return ParseLimits(
        zip_max_uncompressed_mb=settings.docx_max_uncompressed_mb,
        zip_max_ratio=settings.docx_max_compression_ratio,
        pdf_max_pages=settings.pdf_max_pages,
        pdf_max_page_chars=settings.pdf_max_page_chars,
        html_max_depth=settings.html_max_depth,
        html_max_mb=settings.html_max_mb,
    )


@dataclass
class Indexer:
    clients: Clients
    parser: ParserPool

    async def claim(self, message: IngestRequest) -> None:
        """Once per delivery: ``processing`` and one more attempt on the row.
        Attempts past ``ingest_max_attempts`` mean every earlier delivery
        ended with no outcome (the worker died or was stopped on it each
        time): a poison document, given up rather than retried forever."""
        request = await self._trusted(message)
        if request is None:
            return  # handle() drops it
        attempts = await documents.claim(self.clients.pool, request.document_id)
        if attempts is None:
            return
        limit = self.clients.settings.ingest_max_attempts
        if attempts > limit:
            raise TooManyAttempts(
                f"{request.filename!r}: {attempts - 1} deliveries ended without an outcome"
                f" (more than INGEST_MAX_ATTEMPTS={limit}); the worker may be crashing on it"
            )
        try:
            await self._announce(request, "processing")
        except Exception as exc:
            # The row says processing; raising would make the retry count a
            # second attempt for this one delivery.
            log.warning(
                "Processing not announced",
                document_id=str(request.document_id),
                error=f"{type(exc).__name__}: {exc}",
            )

    async def handle(self, message: IngestRequest) -> str:
        """Index the document; the outcome for the duration metric. A content
        error (``InvalidInput``) propagates: the consumer dead-letters the
        message and calls ``fail``."""
        request = await self._trusted(message)
        if request is None:
            log.info("Document deleted before indexing", document_id=str(message.document_id))
            return "dropped"
        try:
            count = await self._index(request)
        except asyncpg.ForeignKeyViolationError:
            # The row went away between our check and the lexical index write.
            log.info("Document deleted while indexing", document_id=str(request.document_id))
            await self._drop_chunks(request)
            return "dropped"
        # The commit point; announcing it is best-effort (below). The same
        # transaction outdates the tenant's cached answers (a trigger,
        # shared.storage.cache), so a client that saw `indexed` is never
        # answered from a cache without the document.
        if not await self._set_status(request, "indexed", chunks=count, announce=False):
            # Deleted while we worked: leave nothing searchable behind.
            await self._drop_chunks(request)
            return "dropped"
        await self._after_indexed(request, count)
        return "indexed"

    async def _after_indexed(self, request: IngestRequest, count: int) -> None:
        """Past the commit point the document is searchable and its row says
        so: what follows is best-effort. Raising here would send the message
        round again, indexing the document again for nothing."""
        log.info("Document indexed", document_id=str(request.document_id), chunks=count)
        try:
            await self._announce(request, "indexed", chunks=count)
        except Exception as exc:
            log.warning(
                "Document indexed, but a follow-up step failed",
                document_id=str(request.document_id),
                error=type(exc).__name__,
            )

    async def fail(self, message: IngestRequest, reason: str, detail: str) -> None:
        request = await self._trusted(message)
        if request is None:
            return
        log.warning("Document failed", document_id=str(request.document_id), reason=reason)
        await self._set_status(request, "failed", error=detail)

    async def _trusted(self, message: IngestRequest) -> IngestRequest | None:
        """The request as the document row has it. Anyone who can publish to
        the topic can write a message; only the gateway writes rows, after
        authenticating the owner. ``None``: the document is gone."""
        doc = await documents.by_id(self.clients.pool, message.document_id)
        if doc is None:
            return None
        row = {
            "tenant_id": doc.tenant_id,
            "user_id": doc.user_id,
            "filename": doc.filename,
            "blob_key": doc.blob_key,
            "sha256": doc.sha256,
            "size_bytes": doc.size_bytes,
        }
        differ = sorted(name for name, value in row.items() if getattr(message, name) != value)
        if differ:
            log.warning(
                "Ingest request disagrees with the document row; using the row",
                document_id=str(doc.id),
                fields=differ,
            )
        return message.model_copy(update=row)

    async def _index(self, request: IngestRequest) -> int:
        pieces = await self._pieces(request)
        contexts = [in_context(request.filename, p.section, p.text) for p in pieces]
        # The id covers exactly the text embedded, and a collection holds one
        # model's vectors: a chunk already stored under its id is this
        # model's vector of this text. A re-delivery or a re-index leaves it
        # alone (no embedding, no write that searches could race with).
        ids = [chunk_id(request.document_id, n, text) for n, text in enumerate(contexts)]
        stored = await self._chunk_ids(request)
        missing = [n for n, id_ in enumerate(ids) if id_ not in stored]
        written: set[Visibility] = set()
        # The row's fields (labels, type, time) each batch was given, as JSON.
        fields: set[str] = set()
        # Embed and store a batch at a time: a long document's vectors are
        # never all in memory at once.
        for start in range(0, len(missing), STORE_BATCH):
            batch = missing[start : start + STORE_BATCH]
            visibility, given = await self._store_vectors(request, pieces, contexts, ids, batch)
            written.add(visibility)
            fields.add(given)
            # The sweeper re-queues documents whose row stands still.
            await documents.touch(self.clients.pool, request.document_id)
        await self.clients.vectors.delete_ids(request.tenant_id, stored - set(ids))
        log.info(
            "Chunks stored",
            document_id=str(request.document_id),
            embedded=len(missing),
            kept=len(ids) - len(missing),
        )
        kept = len(missing) < len(ids)
        await self._settle_visibility(request, None if kept else written, None if kept else fields)
        await self.clients.lexical.replace_document(
            request.tenant_id,
            request.user_id,
            request.document_id,
            [
                IndexedChunk(
                    ids[n], n, piece.text, piece.page, piece.section, indexed_text=contexts[n]
                )
                for n, piece in enumerate(pieces)
            ],
        )
        return len(pieces)

    async def _pieces(self, request: IngestRequest) -> list[Piece]:
        """The document's chunks of text, from its verified blob."""
        try:
            data = await self.clients.blobs.read(request.blob_key)
        except NotFound:
            raise UnsupportedDocument("the uploaded file is missing from the blob store") from None
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        if digest != request.sha256:
            raise UnsupportedDocument(
                f"{request.filename!r}: the stored file does not match the checksum taken at upload"
            )
        settings = self.clients.settings
        # In a child process with memory and time limits: a hostile file
        # costs that child, never this worker.
        pieces = await self.parser.run(
            repr(request.filename),
            parse,
            request.filename,
            data,
            parse_limits(settings),
            settings.chunk_size,
            settings.chunk_overlap,
        )
        if not pieces:
            raise UnsupportedDocument(f"{request.filename!r}: the document has no text")
        return pieces

    async def _store_vectors(
        self,
        request: IngestRequest,
        pieces: list[Piece],
        contexts: list[str],
        ids: list[str],
        batch: list[int],
    ) -> tuple[Visibility, str]:
        """Embed and store the chunks at ``batch`` (positions); the visibility
        and the row's fields (``documents.chunk_fields``, as JSON) they were given."""
        vectors = await self.clients.require_embedder().embed_documents(
            [contexts[n] for n in batch]
        )
        # Read after embedding, just before the write: the row's value now.
        # A row that is gone gives private; handle() drops the chunks anyway.
        now = await documents.with_groups(self.clients.pool, request.document_id)
        row, shared_with = now if now is not None else (None, [])
        visibility = row.visibility if row is not None else "private"
        await self.clients.vectors.upsert(
            [
                Chunk(
                    id=ids[n],
                    tenant_id=request.tenant_id,
                    user_id=request.user_id,
                    document_id=request.document_id,
                    filename=request.filename,
                    chunk_index=n,
                    text=pieces[n].text,
                    embedding=vector,
                    page=pieces[n].page,
                    section=pieces[n].section,
                    visibility=visibility,
                    # The row's, for filters; settled after the last batch.
                    content_type=row.content_type if row is not None else None,
                    uploaded_at=row.created_at if row is not None else None,
                    tags=tuple(row.tags) if row is not None else (),
                    meta=tuple(row.meta.items()) if row is not None else (),
                    groups=tuple(shared_with),
                )
                for n, vector in zip(batch, vectors, strict=True)
            ]
        )
        given = json.dumps(documents.chunk_fields(row, shared_with), sort_keys=True) if row else ""
        return visibility, given

    async def _settle_visibility(
        self,
        request: IngestRequest,
        written: set[Visibility] | None,
        fields: set[str] | None = None,
    ) -> None:
        """The owner may have shared or unshared the document while its
        batches were written: each batch carries the row's visibility as read
        just before it was stored, and now, after the last write, the row is
        read again and any difference fixed (``documents.sync_visibility``).
        A change after this read is the changer's to apply to every chunk,
        which by then are all stored."""
        doc = await documents.by_id(self.clients.pool, request.document_id)
        if doc is None:
            return  # handle() drops the chunks
        # None: chunks kept from before may carry another value; checked.
        uniform = next(iter(written)) if written is not None and len(written) == 1 else None
        await documents.sync_visibility(self.clients.pool, self.clients.vectors, doc, uniform)
        # Labels likewise: a PATCH may have changed them meanwhile, and chunks
        # kept from an earlier delivery (or indexed before labels existed)
        # get them, with the content type and upload time, here.
        uniform_fields = (
            json.loads(next(iter(fields)))
            if fields and len(fields) == 1 and "" not in fields
            else None
        )
        await documents.sync_labels(self.clients.pool, self.clients.vectors, doc, uniform_fields)

    async def _chunk_ids(self, request: IngestRequest) -> set[str]:
        return await self.clients.vectors.chunk_ids(
            request.tenant_id, request.user_id, request.document_id
        )

    async def _drop_chunks(self, request: IngestRequest) -> None:
        await self.clients.vectors.delete_ids(request.tenant_id, await self._chunk_ids(request))

    async def _set_status(
        self,
        request: IngestRequest,
        status: DocumentStatus,
        *,
        chunks: int | None = None,
        error: str | None = None,
        announce: bool = True,
    ) -> bool:
        """The status in Postgres (the source of truth; ``False``: no such row),
        then on ``rag.ingest.events`` unless ``announce`` is off."""
        found = await documents.set_status(
            self.clients.pool, request.document_id, status, chunks=chunks, error=error
        )
        if found and announce:
            await self._announce(request, status, chunks=chunks, error=error)
        return found

    async def _announce(
        self,
        request: IngestRequest,
        status: DocumentStatus,
        *,
        chunks: int | None = None,
        error: str | None = None,
    ) -> None:
        event = IngestStatus(
            correlation_id=request.correlation_id,
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            document_id=request.document_id,
            status=status,
            chunks=chunks or 0,
            error=error,
        )
        await publish(
            self.clients.broker, self.clients.topics.ingest_events, event, key=request.document_id
        )
