"""structlog set-up shared by every process: JSON lines on stdout, or
coloured lines for a person at a terminal (``LOG_FORMAT``).

Anything bound with ``structlog.contextvars`` (the request's
``correlation_id`` above all) lands on every line, including lines from
libraries that log through the standard library.

A line logged with ``QUIET_ON_TERMINAL`` is routine for a person watching:
on a terminal it is DEBUG (shown only with ``LOG_LEVEL=DEBUG``), while JSON
(on stdout, and in ``LOG_DIR``'s files) keeps it at its own level.
"""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shared.config import Settings

# Values under these keys never reach a log line, whoever passed them.
_SECRET_KEYS = frozenset(
    {"authorization", "password", "token", "access_token", "refresh_token", "secret", "secret_key"}
)
_NOISY = ("aiokafka", "kafka", "chromadb", "httpx", "httpcore", "faststream")
# Loggers of this project; any other is a library's.
_OURS = ("gateway", "ingest", "query", "shared", "ragstream", "__main__")
# log.info("...", **{QUIET_ON_TERMINAL: True}): DEBUG on a terminal only.
QUIET_ON_TERMINAL = "_quiet_on_terminal"


def console_wanted(log_format: str) -> bool:
    """``auto`` means a person is watching when stdout is a terminal."""
    if log_format == "auto":
        return sys.stdout.isatty()
    return log_format == "console"


# On a console, the lowest level of a library's line still shown. The Kafka
# client logs a coordinator not yet elected, at every start, as an ERROR;
# a broker really gone is reported by our own lines (readiness, workers).
_CONSOLE_FLOOR = {"aiokafka": logging.CRITICAL, "kafka": logging.CRITICAL}


def _ours_or_error(record: logging.LogRecord) -> bool:
    """On a console, libraries' routine chatter (coordinator rebalances,
    migration steps, server banners) would drown what matters."""
    top = record.name.split(".", 1)[0]
    return top in _OURS or record.levelno >= _CONSOLE_FLOOR.get(top, logging.ERROR)


class _Terminal(logging.StreamHandler):  # type: ignore[type-arg]
    """A person's terminal: lines marked QUIET_ON_TERMINAL become DEBUG here
    (a copy: the other handlers keep the line as it was logged)."""

    def handle(self, record: logging.LogRecord) -> bool:
        event = record.msg
        if isinstance(event, dict) and event.get(QUIET_ON_TERMINAL):
            if not logging.getLogger().isEnabledFor(logging.DEBUG):
                return False
            record = copy.copy(record)
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg = {**event, "level": "DEBUG"}
        return bool(super().handle(record))


def _drop_marks(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop(QUIET_ON_TERMINAL, None)
    return event_dict


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


def _formatter(shared: list[Processor], renderer: Processor) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_marks,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def _handlers(
    settings: Settings, service: str, shared: list[Processor], log_dir: Path | None
) -> list[logging.Handler]:
    console = console_wanted(settings.log_format)
    renderer: Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    terminal = _Terminal(sys.stdout) if console else logging.StreamHandler(sys.stdout)
    terminal.setFormatter(_formatter(shared, renderer))
    handlers: list[logging.Handler] = [terminal]
    folder = log_dir or settings.log_dir
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(folder / f"{service}.log", encoding="utf-8")
        file.setFormatter(_formatter(shared, structlog.processors.JSONRenderer()))
        handlers.append(file)
        if console:  # the file keeps the libraries' lines the terminal leaves out
            terminal.addFilter(_ours_or_error)
    return handlers


def configure_logging(settings: Settings, service: str, log_dir: Path | None = None) -> None:
    """Root logging for one process; ``log_dir`` overrides ``LOG_DIR``."""
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
    root = logging.getLogger()
    root.handlers[:] = _handlers(settings, service, shared, log_dir)
    root.setLevel(settings.log_level)
    # Libraries' warnings (deprecations and the like) become log lines too.
    logging.captureWarnings(True)
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
