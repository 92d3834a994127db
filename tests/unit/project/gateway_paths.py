"""The paths the gateway serves, read from the app itself, for the checks
that the Ingress routes them and that the alert rules name real routes."""

from __future__ import annotations

from typing import Any
from unittest import mock

from shared.config import Settings


def _leaves(routes: list[Any]) -> list[Any]:
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router
        found.extend(_leaves(list(inner.routes)) if inner is not None else [route])
    return found


def served_routes() -> dict[str, set[str]]:
    """Every route template (``/api/documents/{document_id}``) -> its methods."""
    from gateway.app import create_app

    # Building the app configures logging for the whole process: not here.
    with mock.patch("gateway.app.configure_logging"):
        app = create_app(Settings(secret_key="k" * 64))
    routes: dict[str, set[str]] = {}
    for route in _leaves(list(app.routes)):
        routes.setdefault(route.path, set()).update(getattr(route, "methods", None) or set())
    return routes
