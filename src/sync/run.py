"""One run of one source: list the tree, then bring its documents in line
with the files, one file at a time, each step committed as it goes.

- a new file becomes a document through the intake, as an upload does
  (lane ``bulk``, owned by the source's owner, with its visibility, tags
  and metadata plus ``source`` and ``path``);
- a changed file (another sha256) gives its document the new content, and
  the ingest worker keeps the embeddings of the chunks that did not change;
- a file gone whose content shows up under a new path in the same run is a
  rename: the document's name follows, nothing is embedded again;
- a file gone is its document deleted, as DELETE /api/documents/{id} does;
- a file that cannot be read, or that the intake refuses, is recorded with
  the reason (``failed``: tried again every run; ``skipped``: by a rule,
  tried again when the file changes), and the run goes on.

Crash safety: before a document is stored, the file's row records the
document id it will have (``pending``); a run that dies anywhere after
that finds the row, and the document (or not), and finishes the step
under the same id. So a run killed half-way resumes without duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID, uuid4

import structlog

from shared.errors import InvalidInput, PayloadTooLarge, RagError, UnsupportedDocument
from shared.intake import Intake, new_document
from shared.intake.changes import discard, rename
from shared.intake.changes import replace as replace_content
from shared.intake.queue import wait
from shared.runtime.clients import Clients
from shared.source_rules import resolve_root
from shared.storage import audit_log, documents, sources
from shared.storage.documents import Conn, Document
from shared.storage.sources import FileRow, FileStatus, LeaseLost, Source
from sync.lease import Lease
from sync.walk import Listing, Seen, open_beneath, walk

log = structlog.get_logger(__name__)

# Refused by a rule of the intake: the same file would be refused again.
RULE_REFUSALS = (InvalidInput, UnsupportedDocument, PayloadTooLarge)
PROGRESS_SECONDS = 1.0
# A run that deferred files (their documents were still being indexed)
# comes back this soon, rather than after the whole interval.
DEFERRED_RETRY_SECONDS = 30.0
META_VALUE_MAX = 256
COUNTERS = (
    "added",
    "changed",
    "renamed",
    "deleted",
    "unchanged",
    "failed",
    "skipped",
    "deferred",
)


class RunFailed(Exception):
    """The run cannot go on (the source's folder is missing, say); why."""


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def count(self, what: str) -> None:
        self.counts[what] += 1


def _hash(fd: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := os.read(fd, 1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    os.lseek(fd, 0, os.SEEK_SET)
    return digest.hexdigest(), size


def _printable(value: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in value)


class SourceRun:
    def __init__(
        self, clients: Clients, source: Source, worker: str, lease: Lease, run_id: UUID
    ) -> None:
        self.clients = clients
        self.pool = clients.pool
        self.source = source
        self.worker = worker
        self.lease = lease
        self.run_id = run_id
        self.intake = Intake.of(clients)
        self.progress = Progress()
        self.limit = min(source.max_bytes, clients.settings.max_upload_bytes)
        self._reported = 0.0
        # Paths of vanished files whose document a new path took over.
        self.moved: set[str] = set()

    # --- the run -------------------------------------------------------------

    async def go(self) -> Progress:
        roots = self.clients.settings.sync_roots
        try:
            root = await asyncio.to_thread(resolve_root, self.source.path, roots)
            listing = await asyncio.to_thread(walk, root, self.source.include, self.source.exclude)
        except (OSError, RagError) as exc:
            raise RunFailed(f"{self.source.path}: {_reason(exc)}") from exc
        rows = await sources.files(self.pool, self.source.id)
        alive = await sources.existing_documents(
            self.pool, [r.document_id for r in rows.values() if r.document_id]
        )
        self._refuse_empty(listing, rows)
        # Rows of files no longer in the tree (a folder not listed this run
        # keeps its rows: unreadable is not deleted).
        gone = {p: r for p, r in rows.items() if p not in listing.files and listing.known(p)}
        renamable = {
            r.sha256: r
            for r in gone.values()
            if r.status == "synced" and r.sha256 and r.document_id in alive
        }
        self.progress.total = len(listing.files) + len(gone) + len(listing.refused)
        await self._report(force=True)
        for relpath, seen in listing.files.items():
            row = rows.get(relpath)
            await self._step(self._file(root, relpath, seen, row, alive, renamable))
        # A document a present file's row points at stays, whatever other
        # row also did (a rename a killed run had half done).
        kept = {r.document_id for p, r in rows.items() if p in listing.files and r.document_id}
        for relpath, row in gone.items():
            if relpath not in self.moved:
                await self._step(self._gone(row, kept))
        for relpath, reason in listing.refused.items():
            row = None if relpath in gone else rows.get(relpath)
            await self._step(self._refused(relpath, reason, row))
        await self._report(force=True)
        return self.progress

    def _refuse_empty(self, listing: Listing, rows: dict[str, FileRow]) -> None:
        """An empty tree where documents were synced is more likely a share
        that is not mounted than every file deleted: nothing is removed."""
        synced = sum(1 for r in rows.values() if r.document_id)
        if not listing.files and not listing.refused and synced:
            raise RunFailed(
                f"{self.source.path} is empty: not deleting its {synced} documents (is the share"
                " mounted? remove the source to delete them)"
            )

    async def _step(self, work: Coroutine[Any, Any, None]) -> None:
        if self.lease.lost:
            work.close()  # never started
            self.lease.check()
        await work
        self.progress.done += 1
        await self._report()

    async def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._reported >= PROGRESS_SECONDS:
            self._reported = now
            p = self.progress
            await sources.progress(self.pool, self.run_id, p.done, p.total, p.counts)

    # --- one file --------------------------------------------------------------

    async def _file(
        self,
        root: Path,
        relpath: str,
        seen: Seen,
        row: FileRow | None,
        alive: set[UUID],
        renamable: dict[str, FileRow],
    ) -> None:
        if row is not None and _unchanged(row, seen, alive):
            self.progress.count("unchanged")
            return
        try:
            if seen.size > self.limit:
                raise PayloadTooLarge(f"the file is larger than {self.limit:,} bytes")
            fd = await asyncio.to_thread(open_beneath, root, relpath)
        except PermissionError:
            await self._failed(relpath, seen, row, "permission denied: the file cannot be read")
            return
        except (OSError, RagError) as exc:
            await self._problem(relpath, seen, row, exc)
            return
        with os.fdopen(fd, "rb") as content:
            try:
                await self._content(relpath, seen, row, content, alive, renamable)
            except LeaseLost:
                raise
            except (OSError, RagError) as exc:
                await self._problem(relpath, seen, row, exc)
            except Exception as exc:  # a bug or a dependency's surprise: this file only
                log.exception("Sync of a file failed", relpath=relpath)
                await self._failed(relpath, seen, row, f"unexpected error: {type(exc).__name__}")

    async def _content(
        self,
        relpath: str,
        seen: Seen,
        row: FileRow | None,
        content: BinaryIO,
        alive: set[UUID],
        renamable: dict[str, FileRow],
    ) -> None:
        sha, size = await asyncio.to_thread(_hash, content.fileno())
        seen = Seen(size, seen.mtime_ns)
        doc_id = row.document_id if row is not None and row.document_id in alive else None
        if doc_id is not None:
            await self._update(relpath, seen, sha, doc_id, content)
            return
        moved = renamable.pop(sha, None)
        if moved is not None:
            self.moved.add(moved.relpath)
            await self._rename(relpath, seen, sha, moved)
            return
        planned = row.document_id if row is not None and row.status == "pending" else None
        await self._add(relpath, seen, sha, planned or uuid4(), content)

    async def _add(
        self, relpath: str, seen: Seen, sha: str, doc_id: UUID, content: BinaryIO
    ) -> None:
        source = self.source
        doc = new_document(
            source.tenant_id,
            source.user_id,
            filename=relpath.rsplit("/", 1)[-1],
            content_type=mimetypes.guess_type(relpath)[0],
            size_bytes=seen.size,
            limit_bytes=self.limit,
            visibility=source.visibility,
            lane="bulk",
            doc_id=doc_id,
            tags=source.tags,
            meta=self._meta(relpath),
        )
        await self.intake.admit(doc)
        # The id is recorded first: a run killed from here on finds it.
        await self._put(FileRow(relpath, doc_id, sha, seen.size, seen.mtime_ns, "pending", None))
        stored = await self.intake.store(
            doc,
            content,
            self._correlation(),
            accepted=self._audit("added", relpath),
            share_with=await sources.live_groups(self.pool, source),
        )
        await self._synced(relpath, seen, stored)
        self.progress.count("added")
        log.info("Synced a new file", relpath=relpath, document_id=str(doc_id))

    async def _update(
        self, relpath: str, seen: Seen, sha: str, doc_id: UUID, content: BinaryIO
    ) -> None:
        doc = await documents.by_id(self.pool, doc_id)
        if doc is None:  # its owner deleted it since the run began
            await self._add(relpath, seen, sha, uuid4(), content)
            return
        if doc.sha256 == sha:
            # The content is the document's (a touched file, or a step a
            # killed run had finished): only its name and metadata may lag.
            if doc.status == "queued":
                await wait(
                    self.intake.broker, self.intake.topics, doc, self._correlation(), db=self.pool
                )
            named = await self._named(doc, relpath)
            if named is None:
                self.progress.count("deferred")
                return
            await self._synced(relpath, seen, named)
            self.progress.count("unchanged")
            return
        await self._put(
            FileRow(relpath, doc_id, doc.sha256, seen.size, seen.mtime_ns, "pending", None)
        )
        changed = await replace_content(
            self.intake, doc, content, self._correlation(), limit_bytes=self.limit
        )
        if changed is None:
            self.progress.count("deferred")
            return
        await self._audit("changed", relpath)(changed)
        await self._synced(relpath, seen, changed)
        self.progress.count("changed")
        log.info("Synced a changed file", relpath=relpath, document_id=str(doc_id))

    async def _rename(self, relpath: str, seen: Seen, sha: str, moved: FileRow) -> None:
        assert moved.document_id is not None
        doc = await documents.by_id(self.pool, moved.document_id)
        if doc is None:  # its owner deleted it since the run began
            await sources.drop_file(self.pool, self.source.id, self.worker, moved.relpath)
            self.progress.count("deferred")
            return
        # The new path's row first, pointing at the document: a run killed
        # before the old row goes sees two rows of one document, and keeps it.
        await self._put(FileRow(relpath, doc.id, sha, seen.size, seen.mtime_ns, "pending", None))
        named = await self._named(doc, relpath)
        if named is None:
            self.progress.count("deferred")
            return
        await self._audit("renamed", relpath, was=moved.relpath)(named)
        await self._synced(relpath, seen, named)
        await sources.drop_file(self.pool, self.source.id, self.worker, moved.relpath)
        self.progress.count("renamed")
        log.info(
            "Synced a renamed file", relpath=relpath, was=moved.relpath, document_id=str(doc.id)
        )

    async def _named(self, doc: Document, relpath: str) -> Document | None:
        """The document under the name and metadata ``relpath`` gives it."""
        filename, meta = relpath.rsplit("/", 1)[-1], self._meta(relpath)
        if doc.filename == filename and doc.meta == meta:
            return doc
        return await rename(self.pool, self.clients.vectors, doc, filename, meta)

    async def _gone(self, row: FileRow, kept: set[UUID]) -> None:
        if row.document_id is not None and row.document_id not in kept:
            doc = await documents.by_id(self.pool, row.document_id)
            if doc is not None:
                clients = self.clients
                audited = deletion_audit(self.source, row.relpath)
                await discard(
                    clients.pool, clients.vectors, clients.blobs, doc, in_transaction=audited
                )
                self.progress.count("deleted")
                log.info("Deleted the document of a vanished file", relpath=row.relpath)
        await sources.drop_file(self.pool, self.source.id, self.worker, row.relpath)

    async def _refused(self, relpath: str, reason: str, row: FileRow | None) -> None:
        status: FileStatus = "failed" if reason.startswith("cannot") else "skipped"
        failures = (row.failures if row is not None else 0) + (status == "failed")
        document_id = row.document_id if row is not None else None
        await self._put(FileRow(relpath, document_id, None, None, None, status, reason, failures))
        self.progress.count(status)

    # --- rows ------------------------------------------------------------------

    async def _problem(
        self, relpath: str, seen: Seen, row: FileRow | None, exc: BaseException
    ) -> None:
        if isinstance(exc, RULE_REFUSALS):
            kept = row or FileRow(relpath, None, None, None, None, "skipped", None)
            await self._put(
                replace(
                    kept,
                    size_bytes=seen.size,
                    mtime_ns=seen.mtime_ns,
                    status="skipped",
                    error=_reason(exc),
                )
            )
            self.progress.count("skipped")
            return
        await self._failed(relpath, seen, row, _reason(exc))

    async def _failed(self, relpath: str, seen: Seen, row: FileRow | None, reason: str) -> None:
        """Recorded, to be tried again next run; the document it had (if
        any) stays as it was."""
        kept = row or FileRow(relpath, None, None, None, None, "failed", None)
        await self._put(
            replace(
                kept,
                size_bytes=seen.size,
                mtime_ns=seen.mtime_ns,
                status="failed",
                error=reason[:1000],
                failures=kept.failures + 1,
            )
        )
        self.progress.count("failed")
        log.warning("Sync of a file failed", relpath=relpath, reason=reason[:200])

    async def _synced(self, relpath: str, seen: Seen, doc: Document) -> None:
        await self._put(
            FileRow(relpath, doc.id, doc.sha256, seen.size, seen.mtime_ns, "synced", None)
        )

    async def _put(self, row: FileRow) -> None:
        await sources.put_file(self.pool, self.source.id, self.worker, row)

    def _meta(self, relpath: str) -> dict[str, str]:
        path = _printable(relpath)
        if len(path) > META_VALUE_MAX:
            path = "…" + path[-(META_VALUE_MAX - 1) :]
        return {**self.source.meta, "source": self.source.name, "path": path}

    def _audit(
        self, change: str, relpath: str, **more: str
    ) -> Callable[[Document], Awaitable[None]]:
        """The audit entry of a document the sync added, changed or renamed."""

        async def record(doc: Document) -> None:
            await audit_log.append(
                self.pool,
                tenant_id=doc.tenant_id,
                actor_id=self.source.user_id,
                action="document.synced",
                target=doc.id,
                detail={"change": change, "source": self.source.name, "path": relpath, **more},
            )

        return record

    def _correlation(self) -> str:
        return f"sync-{self.run_id.hex[:12]}-{uuid4().hex[:8]}"


def deletion_audit(source: Source, relpath: str) -> Callable[[Conn, Document], Awaitable[None]]:
    """The audit entry of a document the sync deleted, in the row's
    transaction, as the API's DELETE writes its own."""

    async def record(conn: Conn, doc: Document) -> None:
        await audit_log.append(
            conn,
            tenant_id=doc.tenant_id,
            actor_id=source.user_id,
            action="document.deleted",
            target=doc.id,
            detail={"filename": doc.filename, "source": source.name, "path": relpath},
        )

    return record


def _unchanged(row: FileRow, seen: Seen, alive: set[UUID]) -> bool:
    """Nothing to do: the same size and modification time as when it was
    synced (or skipped by a rule), and its document still there."""
    same = row.size_bytes == seen.size and row.mtime_ns == seen.mtime_ns
    if row.status == "skipped":
        return same
    return same and row.status == "synced" and row.document_id in alive


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
