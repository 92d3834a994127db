"""The one error the local stack raises for problems a user can fix."""

from __future__ import annotations


class StackError(RuntimeError):
    """A service could not be prepared or started; the message says what to do."""
