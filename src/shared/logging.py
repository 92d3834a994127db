"""structlog set-up shared by every process: JSON lines on stdout.

Anything bound with ``structlog.contextvars`` (the request's
``correlation_id`` above all) lands on every line, including lines from
libraries that log through the standard library.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.config import Settings

# Values under these keys never reach a log line, whoever passed them.
_SECRET_KEYS = frozenset(
    {"authorization", "password", "token", "access_token", "refresh_token", "secret", "secret_key"}
)
_NOISY = ("aiokafka", "kafka", "chromadb", "httpx", "httpcore", "faststream")


def _redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key in event_dict.keys() & _SECRET_KEYS:
        event_dict[key] = "[redacted]"
    return event_dict


def _upper_level(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # Upper case, as operators grep for it: `kubectl logs ... | grep ERROR`.
    event_dict["level"] = str(event_dict.get("level", "")).upper()
    return event_dict


def _with_service(service: str) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def configure_logging(settings: Settings, service: str) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        _upper_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _with_service(service),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # Under `uvicorn gateway.main:app` uvicorn installs its own handlers
    # first; route its lines through ours. Requests are logged by the
    # gateway's middleware, with their correlation id.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def bind_correlation(correlation_id: str, **extra: Any) -> Any:
    """Context manager: every log line inside carries this correlation id."""
    return structlog.contextvars.bound_contextvars(correlation_id=correlation_id, **extra)
