"""Rate and concurrency limits, counted in Redis so every replica of the
gateway shares them.

Rates are fixed one-minute windows (a counter per key and minute, expiring
with it): cheap, one round trip, and at worst twice the rate across a window
boundary, which is enough against guessing and flooding. Open streams are a
sorted set per user: each stream id scored with the time it is given up at
the latest, so a slot whose gateway died mid-stream frees itself.

Failed credential checks are counted per client address too
(``authenticating``): past AUTH_FAILURES_PER_MINUTE the address gets 429
before its credentials are checked, so guessing tokens or API keys (each made
up key costs a database lookup) is bounded like guessing passwords.

Redis down means no limits, not no service: every check fails open with a
warning (at most one every few seconds), and chats keep working.

Keys carry KAFKA_TOPIC_PREFIX, the deployment's name: deployments sharing a
Redis never count each other's requests. Usernames are hashed into keys.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.config import STREAM_TIMEOUT_MAX, Settings
from shared.errors import AuthError, TooManyRequests

log = structlog.get_logger(__name__)
T = TypeVar("T")

WINDOW_SECONDS = 60
# The longest a stream slot is held if its release never comes (the gateway
# died): a generous bound on a stream's life, after which the slot frees itself.
STREAM_HOLD_SECONDS = 2 * int(STREAM_TIMEOUT_MAX)
_WARN_EVERY_SECONDS = 10.0

# Drop expired slots, then take one if fewer than the limit are held (or
# this stream holds one already: a client resuming it while its first
# connection is not yet found gone).
# KEYS[1] the user's set; ARGV: now, expires_at, limit, stream id, key ttl.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[4])
  and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _window() -> tuple[int, int]:
    """The current window's number, and the seconds until the next one."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    return window, int((window + 1) * WINDOW_SECONDS - now) + 1


class Limits:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._ns = f"limit:{settings.kafka_topic_prefix}"
        self._acquire = redis.register_script(_ACQUIRE)
        self._warned_at = 0.0

    async def login_attempt(self, ip: str, username: str | None) -> None:
        """One attempt at login or register, counted per client IP and per
        username; TooManyRequests once either is over the limit."""
        limit = self._settings.login_attempts_per_minute
        await self._hit(f"login-ip:{ip}", limit, "too many sign-in attempts from this address")
        if username:
            await self._hit(
                f"login-user:{_digest(username)}", limit, "too many sign-in attempts for this user"
            )

    async def authenticating(self, ip: str, check: Callable[[], Awaitable[T]]) -> T:
        """``check()``, a credential's check, for a request from ``ip``:
        refused with TooManyRequests before it runs once ``ip`` has failed
        AUTH_FAILURES_PER_MINUTE checks this minute, and counted against
        ``ip`` when it fails (AuthError). Successes cost one read."""
        limit = self._settings.auth_failures_per_minute
        window, retry_after = _window()
        key = f"{self._ns}:auth-failures:{ip}:{window}"
        failures = await self._guarded(self._redis.get(key), default=None)
        if failures is not None and int(failures) >= limit:
            raise TooManyRequests(
                "too many failed authentications from this address", retry_after=retry_after
            )
        try:
            return await check()
        except AuthError:
            await self._guarded(self._count(key), default=0)
            raise

    async def request(self, user_id: UUID) -> None:
        """One authenticated request of ``user_id``."""
        limit = self._settings.requests_per_minute
        await self._hit(f"requests:{user_id}", limit, "too many requests")

    async def open_stream(self, user_id: UUID, stream_id: str) -> None:
        """Take one of the user's stream slots, or TooManyRequests."""
        now = time.time()
        limit = self._settings.max_concurrent_streams
        taken = await self._guarded(
            self._acquire(
                keys=[self._streams_key(user_id)],
                args=[now, now + STREAM_HOLD_SECONDS, limit, stream_id, STREAM_HOLD_SECONDS],
            ),
            default=1,
        )
        if not taken:
            raise TooManyRequests(
                f"at most {limit} chat streams may be open at once; close one first",
                retry_after=5,
            )

    async def close_stream(self, user_id: UUID, stream_id: str) -> None:
        await self._guarded(self._redis.zrem(self._streams_key(user_id), stream_id), default=0)

    def _streams_key(self, user_id: UUID) -> str:
        return f"{self._ns}:streams:{user_id}"

    async def _hit(self, what: str, limit: int, message: str) -> None:
        window, retry_after = _window()
        key = f"{self._ns}:{what}:{window}"
        count = await self._guarded(self._count(key), default=0)
        if count > limit:
            raise TooManyRequests(message, retry_after=retry_after)

    async def _count(self, key: str) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 5)
            count, _ = await pipe.execute()
        return int(count)

    async def _guarded(self, call: Awaitable[T], default: T) -> T:
        """``call``'s result, or ``default`` (let it pass) if Redis fails."""
        try:
            return await call
        except (RedisError, OSError, TimeoutError) as exc:
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning(
                    "Limits not enforced: Redis unavailable",
                    error=f"{type(exc).__name__}: {exc}",
                )
            return default
