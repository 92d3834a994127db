"""The one error the local stack raises for problems a user can fix."""

from __future__ import annotations

from ragstream.errors import CliError


class StackError(CliError, RuntimeError):
    """A service could not be prepared or started; the message says what to do.
    ``rag`` exits 2; it is a RuntimeError too, for callers outside the CLI."""
