"""The ``rag`` command's exception tree: one root, which ``ragstream.cli``
turns into one line on stderr and the error's exit code, never a traceback.

::

    CliError          an expected failure; exit 2 unless raised with another code
    ├── ConfigDocError    settings or template cannot make docs/configuration.md
    │                     (ragstream.config_doc)
    ├── StackError        a local service could not be prepared or started; exit 2
    │                     (ragstream.localstack; also a RuntimeError)
    ├── DependencyError   a server a command needs does not answer or refuses it;
    │                     exit 1 (ragstream.dependencies)
    └── ClientError       a client command failed (login, ingest, chat, docs); exit 1
                          (ragstream.client)

Outside the tree, ``ApiError`` (ragstream.api) and ``EvalError``
(ragstream.evaluation) are caught where a command meets them, and become a
``CliError`` or a warning; ``cli.py`` also reports a pydantic
``ValidationError`` (exit 2) and an ``OSError`` (exit 1) in one line.
Anything else is a bug, and shows its traceback.
"""

from __future__ import annotations


class CliError(Exception):
    """An expected failure: one line for the user, and an exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
