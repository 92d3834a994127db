"""Settings for the ``rag`` command: a bad value is one line naming the
environment variable, never a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from ragstream.errors import CliError

if TYPE_CHECKING:
    from shared.config import Settings


def describe(exc: ValidationError) -> str:
    """``invalid setting RETRIEVAL_TOP_K: Input should be a valid integer…``.
    The value itself is left out: it may be a secret."""
    from ragstream.config_doc import variable
    from shared.config import Settings

    first = exc.errors()[0]
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:  # a check across settings
        return f"invalid configuration: {message}{more}"
    name = str(first["loc"][0])
    field = Settings.model_fields.get(name)
    shown = variable(name, field) if field is not None else name.upper()
    return f"invalid setting {shown}: {message}{more}"


def load_settings() -> Settings:
    from shared.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise CliError(describe(exc)) from exc
