"""The web chat page: one HTML file, one script, one style sheet, served from
the package (no build step, nothing fetched from elsewhere at run time).

The page talks to the same API as any client, with the user's token; these
routes only hand out the files and what the page needs to know before anyone
signs in."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Response
from pydantic import BaseModel

from gateway.http.deps import GatewayDep
from shared.errors import NotFound
from shared.formats import SUPPORTED_SUFFIXES

router = APIRouter(include_in_schema=False)

# Stricter than the headers every response gets (gateway.http.middleware keeps a
# policy a route sets): no inline script or style, nothing from elsewhere.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# Read once, at import: three small files, never read again on a request.
_FILES = {name: (files("gateway") / "web" / name).read_bytes() for name in _TYPES}


class PageConfig(BaseModel):
    registration: bool
    # Single sign-on is configured: the page offers /api/auth/oidc/login.
    sso: bool
    max_upload_mb: int
    suffixes: list[str]


def _file(name: str) -> Response:
    # no-cache: revalidated each time, so a new release shows at once.
    headers = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}
    return Response(_FILES[name], media_type=_TYPES[name], headers=headers)


@router.get("/")
async def page() -> Response:
    return _file("index.html")


@router.get("/favicon.ico")
async def favicon() -> Response:
    # Browsers ask on every visit; the page has no icon, and says so quietly.
    return Response(status_code=204)


@router.get("/web/config.json", response_model=PageConfig)
async def page_config(gateway: GatewayDep) -> PageConfig:
    """Whether to offer registration and single sign-on, and what an upload may be."""
    settings = gateway.clients.settings
    return PageConfig(
        registration=settings.allow_registration,
        sso=gateway.oidc is not None,
        max_upload_mb=settings.max_upload_mb,
        suffixes=list(SUPPORTED_SUFFIXES),
    )


@router.get("/web/{name}")
async def asset(name: str) -> Response:
    if name not in _TYPES or name == "index.html":
        raise NotFound("no such file")
    return _file(name)
