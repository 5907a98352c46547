"""API keys: created by the operator, shown once, stored only as hashes.

A key reads ``sk_live_<id>_<secret>``: the ``sk_live_`` prefix is what StemSplit
clients expect (the official SDK warns about anything else), the id finds the record
in one lookup, and the secret part carries 192 random bits. Because a key is that
random, a single SHA-256 is the right hash (a slow password hash would add nothing but
latency to every request); the comparison is constant-time.

Each key also gets a webhook signing secret, sealed in the store, that signs the
per-job callbacks of jobs created with it (subscriptions have their own secrets).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stemhub import ErrorCode, StemhubError, new_secret, parse_limit

if TYPE_CHECKING:
    from stemhub import PluginState

KEY_PREFIX = "sk_live_"
NAMESPACE = "n8n_bridge.keys"
_ID_LENGTH = 12


class ApiError(StemhubError):
    """A refusal with the StemSplit ``error.code`` the compatible surface shows."""

    def __init__(self, code: ErrorCode, api_code: str, message: str, **kwargs: Any) -> None:
        super().__init__(code, message, **kwargs)
        self.api_code = api_code


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    quota: str | None
    hint: str
    """The first characters of the key, so a person can tell keys apart."""

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedKey:
    """What ``keys create`` prints once: the key and its webhook secret in clear."""

    key: ApiKey
    token: str
    webhook_secret: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _when(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _record_to_key(record: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=record["id"],
        name=record["name"],
        created_at=_when(record["created_at"]) or datetime.now(UTC),
        revoked_at=_when(record.get("revoked_at")),
        quota=record.get("quota"),
        hint=record["hint"],
    )


class ApiKeys:
    """The keys in the bridge's namespace of the hub's store (a hub, or a command's state)."""

    def __init__(self, state: PluginState, *, cache_s: float = 0.0) -> None:
        self._state = state
        self._kv = state.kv(NAMESPACE)
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        self._flights: dict[str, asyncio.Future[Any]] = {}

    async def create(self, name: str, *, quota: str | None = None) -> IssuedKey:
        if quota:
            try:
                parse_limit(quota)
            except ValueError as exc:
                raise StemhubError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        key_id = secrets.token_hex(_ID_LENGTH // 2)
        token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
        webhook_secret = new_secret()
        record = {
            "id": key_id,
            "name": name,
            "hash": _hash(token),
            "hint": token[: len(KEY_PREFIX) + _ID_LENGTH + 4],
            "created_at": time.time(),
            "revoked_at": None,
            "quota": quota or None,
            "webhook_secret": self._state.seal(webhook_secret, purpose=f"bridge-key:{key_id}"),
        }
        await self._kv.put(key_id, record)
        return IssuedKey(_record_to_key(record), token, webhook_secret)

    async def list(self) -> list[ApiKey]:
        return [_record_to_key(record) for _key, record in await self._kv.items()]

    async def get(self, key_id: str) -> ApiKey | None:
        record = await self._kv.get(key_id)
        return _record_to_key(record) if isinstance(record, dict) else None

    async def revoke(self, key_id: str) -> bool:
        record = await self._kv.get(key_id)
        if not isinstance(record, dict):
            return False
        if record.get("revoked_at") is None:
            record["revoked_at"] = time.time()
            await self._kv.put(key_id, record)
        self._cache.clear()
        return True

    async def webhook_secret(self, key_id: str) -> str | None:
        record = await self._kv.get(key_id)
        if not isinstance(record, dict):
            return None
        sealed: str = record["webhook_secret"]
        return self._state.unseal(sealed, purpose=f"bridge-key:{key_id}")

    async def authenticate(self, token: str | None) -> ApiKey:
        """The key a request presents, or 401 (missing, unknown) / 403 (revoked)."""
        if not token:
            raise ApiError(
                ErrorCode.UNAUTHORIZED,
                "MISSING_API_KEY",
                "Send your API key as 'Authorization: Bearer sk_live_...' or 'X-API-Key'.",
            )
        digest = _hash(token)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return self._usable(cached[1])
        invalid = ApiError(ErrorCode.UNAUTHORIZED, "INVALID_API_KEY", "This API key is not valid.")
        if not token.startswith(KEY_PREFIX):
            raise invalid
        key_id = token[len(KEY_PREFIX) :].split("_", 1)[0]
        if len(key_id) != _ID_LENGTH:
            raise invalid
        flight = self._flights.get(key_id)
        if flight is None:
            flight = asyncio.ensure_future(self._kv.get(key_id))
            self._flights[key_id] = flight
            flight.add_done_callback(lambda _f: self._flights.pop(key_id, None))
        record = await asyncio.shield(flight)
        if not isinstance(record, dict) or not hmac.compare_digest(record["hash"], digest):
            raise invalid
        key = _record_to_key(record)
        if self.cache_s > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_s, key)
        return self._usable(key)

    @staticmethod
    def _usable(key: ApiKey) -> ApiKey:
        if not key.active:
            raise ApiError(ErrorCode.FORBIDDEN, "API_KEY_REVOKED", "This API key was revoked.")
        return key


__all__ = ["KEY_PREFIX", "ApiError", "ApiKey", "ApiKeys", "IssuedKey"]
