"""The ASGI app, for ``uvicorn gateway.main:app --workers N``."""

from gateway.app import create_app

app = create_app()
