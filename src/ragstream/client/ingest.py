"""``rag ingest``: upload files and folders, then wait until the workers
have indexed (or failed) each one, by polling its status."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragstream.client.errors import ClientError, reason
from ragstream.client.session import Session, expect
from shared.formats import SUPPORTED_SUFFIXES

POLL_SECONDS = 0.5
FINAL = ("indexed", "failed", "refused", "timed out")


@dataclass
class Item:
    path: Path
    shown: str  # the name the summary shows: relative to what was named
    status: str = "pending"
    document_id: str | None = None
    chunks: int = 0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "indexed"


@dataclass
class Plan:
    items: list[Item] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # unsupported files inside folders


def supported(path: Path) -> bool:
    return path.name.lower().endswith(SUPPORTED_SUFFIXES)


def collect(paths: Sequence[Path]) -> Plan:
    """Named files are all sent (the gateway says why it refuses one);
    folders contribute their supported files, recursively, hidden ones aside."""
    plan = Plan()
    for named in paths:
        if named.is_dir():
            for file in sorted(p for p in named.rglob("*") if p.is_file()):
                relative = file.relative_to(named)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if supported(file):
                    plan.items.append(Item(file, str(named.name / relative)))
                else:
                    plan.skipped.append(file)
        elif named.is_file():
            plan.items.append(Item(named, str(named)))
        else:
            raise ClientError(f"{named}: no such file or folder")
    return plan


def upload(
    session: Session,
    item: Item,
    *,
    bulk: bool = False,
    tags: Sequence[str] = (),
    meta: Sequence[str] = (),
) -> None:
    """``bulk``: indexed after the tenant's interactive uploads (an import).
    ``tags`` and ``meta`` (``key=value`` each) label the document."""
    content_type = mimetypes.guess_type(item.path.name)[0] or "application/octet-stream"
    form: dict[str, str | list[str]] = {"lane": "bulk" if bulk else "interactive"}
    if tags:
        form["tags"] = list(tags)
    if meta:
        form["meta"] = list(meta)
    try:
        with item.path.open("rb") as body:
            files = {"file": (item.path.name, body, content_type)}
            response = session.request("POST", "/api/documents", files=files, data=form)
    except OSError as exc:
        item.status, item.detail = "refused", f"cannot read: {exc.strerror or exc}"
        return
    if response.status_code != 202:
        item.status, item.detail = "refused", reason(response)
        return
    item.document_id, item.status = str(response.json()["id"]), "queued"


def poll(session: Session, item: Item) -> None:
    doc = expect(session.request("GET", f"/api/documents/{item.document_id}"), 200)
    item.status, item.chunks = str(doc["status"]), int(doc.get("chunks") or 0)
    item.detail = str(doc.get("error") or "")


def wait(
    session: Session, items: Iterable[Item], timeout: float, done: Callable[[Item], None]
) -> None:
    """Polls until every uploaded item is indexed or failed; ``done`` is
    called once per item as it gets there."""
    pending = [i for i in items if i.status not in FINAL]
    deadline = time.monotonic() + timeout
    while pending:
        for item in list(pending):
            poll(session, item)
            if item.status in FINAL:
                pending.remove(item)
                done(item)
        if pending and time.monotonic() > deadline:
            for item in pending:
                item.status, item.detail = "timed out", f"still {item.status} after {timeout:g} s"
                done(item)
            return
        if pending:
            time.sleep(POLL_SECONDS)
