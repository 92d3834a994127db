"""LangSmith tracing, live only when LangSmith's own environment variables turn
it on: ``LANGSMITH_TRACING=true`` (or the older ``LANGCHAIN_TRACING_V2=true``)
together with an API key (``LANGSMITH_API_KEY``); ``LANGSMITH_ENDPOINT`` and
``LANGSMITH_PROJECT`` choose where runs go. Otherwise ``traced`` hands the
function back untouched, langsmith is not even imported, and nothing is sent.

Runs are sent by langsmith's background thread in batches; it drains its queue
when the process exits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])
RunType = Literal["chain", "llm", "retriever", "tool", "prompt", "parser", "embedding"]

# langsmith's own order: a *_V2 switch, when set, wins over the plain one.
_SWITCHES = (
    "LANGSMITH_TRACING_V2",
    "LANGCHAIN_TRACING_V2",
    "LANGSMITH_TRACING",
    "LANGCHAIN_TRACING",
)
_KEYS = ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether runs would be sent. Without a key they would only be refused,
    so tracing stays off."""
    env = os.environ if environ is None else environ
    switch = next((env[name] for name in _SWITCHES if env.get(name, "").strip()), "")
    has_key = any(env.get(name, "").strip() for name in _KEYS)
    # Exactly "true", as langsmith compares it: the two never disagree.
    return switch == "true" and has_key


def traced(name: str, run_type: RunType = "chain") -> Callable[[F], F]:
    """Make an async function (or async generator) a LangSmith run, when
    tracing is on at decoration time (the environment is the process's own, set
    before start-up). ``self`` is left out of a method's inputs by langsmith."""

    def decorate(function: F) -> F:
        if not tracing_enabled():
            return function
        from langsmith import traceable

        return cast(F, traceable(name=name, run_type=run_type)(function))

    return decorate
