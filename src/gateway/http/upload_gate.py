"""What an upload may take of one gateway process before its body is read:
a slot among the user's concurrent uploads, and bytes of the process's spool
budget (FastAPI spools a multipart body to the pod's ``/tmp``).

Both are per process: the spool is a process's disk, and a user's uploads
spread over replicas each meet a replica's cap. Refusals name their limit:
``TooManyRequests`` for the user's own uploads (429), ``Unavailable`` when
the process's spool is full (503: another replica, or a moment later, will
take it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from shared.errors import TooManyRequests, Unavailable

RETRY_AFTER_SECONDS = 5


class SpoolFull(Unavailable):
    retry_after = RETRY_AFTER_SECONDS


@dataclass
class UploadGate:
    max_per_user: int
    spool_bytes: int
    _uploads: dict[UUID, int] = field(default_factory=dict)
    _spooled: int = 0

    def enter(self, user_id: UUID) -> None:
        """Take one of the user's upload slots, or ``TooManyRequests``."""
        held = self._uploads.get(user_id, 0)
        if held >= self.max_per_user:
            raise TooManyRequests(
                f"at most {self.max_per_user} uploads may run at once; wait for one to finish",
                retry_after=RETRY_AFTER_SECONDS,
            )
        self._uploads[user_id] = held + 1

    def leave(self, user_id: UUID) -> None:
        held = self._uploads.get(user_id, 0) - 1
        if held > 0:
            self._uploads[user_id] = held
        else:
            self._uploads.pop(user_id, None)

    def reserve(self, size: int) -> None:
        """Count ``size`` more bytes as spooled, or ``SpoolFull``."""
        if self._spooled + size > self.spool_bytes:
            raise SpoolFull("the server is receiving too many uploads; try again shortly")
        self._spooled += size

    def release(self, size: int) -> None:
        self._spooled = max(0, self._spooled - size)

    @property
    def spooled(self) -> int:
        return self._spooled
