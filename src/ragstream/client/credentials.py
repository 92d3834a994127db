"""The signed-in session, kept in the user's config folder (mode 0600, as
it holds a refresh token: whoever reads it can act as the user)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import typer

from ragstream import stack_env
from ragstream.client.errors import ClientError

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Login:
    url: str
    username: str
    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds

    def expired(self, margin: float = 10.0) -> bool:
        return time.time() + margin >= self.expires_at

    def renewed(self, tokens: dict[str, Any]) -> Login:
        return replace(
            self,
            access_token=str(tokens["access_token"]),
            refresh_token=str(tokens["refresh_token"]),
            expires_at=time.time() + float(tokens["expires_in"]),
        )


def path() -> Path:
    # click's app dir honours $XDG_CONFIG_HOME on Linux.
    return Path(typer.get_app_dir("ragstream")) / "login.json"


def load() -> Login | None:
    file = path()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return Login(**{k: data[k] for k in Login.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"{file} is unreadable ({exc}): run `rag login` again") from exc


def save(login: Login) -> Path:
    file = path()
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = file.with_suffix(".tmp")
    # Created 0600 from the start: never readable by others, even briefly.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(login), out, indent=2)
    os.chmod(staging, 0o600)  # an older file of that name kept its mode
    os.replace(staging, file)
    return file


def forget() -> bool:
    try:
        path().unlink()
    except FileNotFoundError:
        return False
    return True


def resolve_url(flag: str | None, login: Login | None) -> str:
    """--url, else the stored login's, else $RAG_URL, else the gateway the
    local stack recorded (``.rag/stack.env``, written by ``rag up``), else
    the local default."""
    recorded = stack_env.read(stack_env.DEFAULT_DATA_DIR) or {}
    url = (
        flag
        or (login.url if login else None)
        or os.environ.get(stack_env.GATEWAY_VAR)
        or recorded.get(stack_env.GATEWAY_VAR)
        or DEFAULT_URL
    )
    return url.rstrip("/")
