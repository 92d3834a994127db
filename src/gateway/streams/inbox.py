"""One stream's replies, as the reply router hands them over: one answer
attempt, in order, each event once, and no more than the stream may hold.

- The first answer attempt heard is the one relayed. A request answered twice
  (redelivered after a worker crashed, with no claim to stop it) sends a
  second attempt numbered from 0 again; it is dropped whole, never spliced.
- Once the relayed attempt is known dead (its worker's lease ran out,
  ``reopen``), the next attempt heard is relayed instead, after an
  ``AttemptReset`` if anything of the dead one was: the client starts over.
- Within the attempt, an event whose ``seq`` is not past the last one relayed
  is dropped: a duplicate (sent twice) or out of order (a late one).
- The queue is bounded: a client that falls that far behind is cut (the
  stream ends with an error event) rather than buffered without end.
- Each event read out has an id (``last_id``): the offset of its record on
  the reply partition (``<offset>r`` for the reset before that record), which
  a client sends back as ``Last-Event-ID`` to resume (gateway.streams.resume).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from shared.contracts.events import DoneReply, ErrorReply, SourcesReply, TokenReply

AnyReplyEvent = TokenReply | SourcesReply | DoneReply | ErrorReply
DropReason = Literal["duplicate", "out_of_order", "other_attempt", "overflow", "after_cut"]
CutReason = Literal["overflow", "shutdown", "worker_lost"]
# Why the gateway ended a stream: a cut, or (told to a client resuming it)
# nobody resumed it within the grace.
StreamEndReason = CutReason | Literal["abandoned"]


@dataclass(frozen=True)
class AttemptReset:
    """What was relayed so far is void: the answer starts again (attempt
    ``attempt``, counting from 1)."""

    attempt: int
    type: Literal["reset"] = "reset"


class StreamCut(Exception):
    """The gateway ended the stream before its answer did."""

    def __init__(self, reason: CutReason) -> None:
        super().__init__(reason)
        self.reason: CutReason = reason


@dataclass
class Inbox:
    tenant_id: UUID
    user_id: UUID
    size: int
    attempt_id: str | None = None
    cut_reason: CutReason | None = None
    _last_seq: int = -1
    _relayed: set[int] = field(default_factory=set)
    # One slot more than the bound, for the wake-up a cut may need.
    _queue: asyncio.Queue[tuple[AnyReplyEvent | AttemptReset, str] | None] = field(init=False)
    # The id of the last event read out ("" before any).
    last_id: str = ""
    _locked: bool = False
    _dead: set[str | None] = field(default_factory=set)
    _attempts: int = 1
    _reset_due: bool = False

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.size + 1)

    def deliver(self, reply: AnyReplyEvent, offset: int = -1) -> DropReason | None:
        """Queue the reply (its record's ``offset`` on the reply partition),
        or say why it was dropped."""
        if self.cut_reason is not None:
            return "after_cut"
        if not self._locked:
            if reply.attempt_id in self._dead:
                return "other_attempt"
            self._locked, self.attempt_id = True, reply.attempt_id
        elif reply.attempt_id != self.attempt_id:
            return "other_attempt"
        if reply.seq <= self._last_seq:
            return "duplicate" if reply.seq in self._relayed else "out_of_order"
        if self._queue.qsize() + self._reset_due >= self.size:
            self.cut("overflow")
            return "overflow"
        if self._reset_due:
            self._reset_due = False
            self._queue.put_nowait((AttemptReset(self._attempts), f"{offset}r"))
        self._last_seq = reply.seq
        self._relayed.add(reply.seq)
        self._queue.put_nowait((reply, str(offset)))
        return None

    def resume_at(self, attempt_id: str | None, seq: int, *, reset: bool = False) -> None:
        """Continue a stream a client saw up to ``seq`` of ``attempt_id``
        (-1: none of it): relay that attempt only, from the next seq; a
        reset first if ``reset`` (what the client was shown is void)."""
        self._locked, self.attempt_id = True, attempt_id
        self._last_seq, self._relayed = seq, set(range(seq + 1))
        self._reset_due = reset

    def reopen(self) -> int:
        """The attempt relayed so far is dead: relay the next one heard (a
        reset first, if anything was relayed). Returns the attempt number
        about to start."""
        if self._locked:
            self._dead.add(self.attempt_id)
        self._reset_due = self._reset_due or bool(self._relayed)
        self._locked, self.attempt_id = False, None
        self._last_seq, self._relayed = -1, set()
        self._attempts += 1
        return self._attempts

    def cut(self, reason: CutReason) -> None:
        """End the stream at the next read, whatever is still queued."""
        if self.cut_reason is None:
            self.cut_reason = reason
        if self._queue.empty():
            self._queue.put_nowait(None)  # wake a reader waiting on an empty queue

    async def get(self) -> AnyReplyEvent | AttemptReset:
        """The next reply; raises StreamCut once the stream is cut."""
        if self.cut_reason is not None:
            raise StreamCut(self.cut_reason)
        queued = await self._queue.get()
        if queued is None or self.cut_reason is not None:
            raise StreamCut(self.cut_reason or "shutdown")
        reply, self.last_id = queued
        return reply

    @property
    def attempts(self) -> int:
        """Answer attempts asked for so far (the first included)."""
        return self._attempts

    def empty(self) -> bool:
        return self._queue.empty()

    def pending(self) -> int:
        """Replies queued and not yet read (``get`` returns at once)."""
        return self._queue.qsize()

    def filling(self) -> bool:
        """Half full or more: its reader should get a turn before more come."""
        return self._queue.qsize() * 2 >= self.size
