"""``rag user create``: a user straight into the database, for the first
admin of a tenant when registration is closed (or any user, by an operator).

It runs where the migration Job runs, with the same DATABASE_URL. The
password never appears on the command line (where ``ps`` and shell history
would show it): it is read from stdin (``--password-stdin``) or prompted for.
"""

from __future__ import annotations

import asyncio
import getpass
import sys

import asyncpg
from pydantic import ValidationError

from gateway.identity import audit, users
from gateway.identity.security import Passwords
from gateway.models import Credentials
from shared.config import Settings
from shared.errors import Conflict
from shared.storage.db import create_pool

MAX_TENANT_NAME = 100


class UserCommandError(Exception):
    """One line for the operator; the command exits 1."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise UserCommandError("the passwords do not match")
    return password


def _credentials(username: str, password: str) -> Credentials:
    """Checked by the API's own rules, so the user can sign in with them."""
    try:
        return Credentials(username=username, password=password)
    except ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        raise UserCommandError(f"invalid {error['loc'][0]}: {error['msg']}") from None


async def _create(settings: Settings, tenant: str, creds: Credentials, admin: bool) -> str:
    # The hasher the gateway uses, with its parameters (argon2's defaults).
    hashed = await Passwords(1).hash(creds.password)
    role: users.Role = "admin" if admin else "member"
    pool = await create_pool(settings)
    try:
        try:
            user, new_tenant = await users.create_in_tenant_named(
                pool, creds.username, hashed, tenant, role
            )
        except Conflict:
            raise UserCommandError(f"username {creds.username!r} is already taken") from None
        await audit.record(
            pool,
            tenant_id=user.tenant_id,
            actor_id=None,
            action="user.created",
            target=user.id,
            detail={"username": user.username, "role": role, "via": "rag user create"},
        )
    finally:
        await pool.close()
    made = "new tenant" if new_tenant else "existing tenant"
    return f"created {role} {user.username} ({user.id}) in {made} {tenant} ({user.tenant_id})"


def command(*, username: str, tenant: str, admin: bool, password_stdin: bool) -> int:
    """``rag user create``; 0, or 1 with one line on stderr."""
    try:
        creds = _credentials(username, _password(password_stdin))
        tenant = tenant.strip()
        if not 1 <= len(tenant) <= MAX_TENANT_NAME or not tenant.isprintable():
            raise UserCommandError(
                f"the tenant name needs 1 to {MAX_TENANT_NAME} printable characters"
            )
        print(asyncio.run(_create(Settings(), tenant, creds, admin)))
    except UserCommandError as exc:
        print(f"rag user: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Unreachable, refused, or not migrated (`rag migrate` first); the
        # message names no password.
        print(f"rag user: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
