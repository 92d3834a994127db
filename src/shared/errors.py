"""The project's exception tree: one root, a few kinds.

::

    RagError
    ├── InvalidInput          bad request or message content
    │   └── UnsupportedDocument   a file we cannot parse
    ├── NotFound              no such thing for this caller
    ├── AuthError             missing, bad or expired credentials
    ├── Forbidden             known caller, not allowed (an admin route, a quota)
    ├── TooManyRequests       a rate or concurrency limit (retry after ``retry_after`` s)
    ├── Conflict              the thing already exists
    ├── PayloadTooLarge       over a configured size limit
    ├── Unavailable           a dependency is down (retry later)
    └── DeadlineExceeded      no answer in the time allowed

The gateway maps these to HTTP responses in one place
(``gateway.errors``); the workers map them to dead-letter reasons in one place
(``shared.runtime.consumer``). ``code`` is the stable, machine-readable name used in
both.
"""

from __future__ import annotations


class RagError(Exception):
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(RagError):
    code = "invalid_input"


class UnsupportedDocument(InvalidInput):
    code = "unsupported_document"


class NotFound(RagError):
    code = "not_found"


class AuthError(RagError):
    code = "unauthorized"


class Forbidden(RagError):
    """Known caller, not allowed: a member at an admin route, a quota reached."""

    code = "forbidden"


class TooManyRequests(RagError):
    """A rate or concurrency limit; ``retry_after`` seconds until it may pass."""

    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class Conflict(RagError):
    code = "conflict"


class PayloadTooLarge(RagError):
    code = "payload_too_large"


class Unavailable(RagError):
    """A dependency failed; the same call may succeed later."""

    code = "unavailable"


class DeadlineExceeded(RagError):
    code = "timeout"
