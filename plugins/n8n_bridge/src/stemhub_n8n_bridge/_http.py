"""What every bridge endpoint shares: auth, the rate limit, bodies, and error envelopes.

Both surfaces answer errors as ``{"error": {"code", "message"}}``. The StemSplit surface
uses the hosted API's codes and statuses (``INVALID_API_KEY`` 401, ``JOB_NOT_FOUND``
404, ``RATE_LIMIT_EXCEEDED`` 429, ``FILE_TOO_LARGE`` 400), so its SDK raises the same
exception classes it raises against the hosted service; ``/v1`` uses stemhub's codes.
A malformed body is always a 4xx: JSON that does not parse, a wrong shape, a body too
big to be a request.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stemhub import ErrorCode, StemhubError, parse_limit
from stemhub_n8n_bridge.keys import ApiError, ApiKey

if TYPE_CHECKING:
    from stemhub_n8n_bridge.frontend import BridgeFrontend

log = logging.getLogger(__name__)

Dialect = Literal["stemsplit", "v1"]
Handler = Callable[[Request, ApiKey], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
"""Nesting a request body may have; deeper is refused before Python's parser recurses."""
MAX_METADATA_BYTES = 16 * 1024
MAX_NAME_CHARS = 255
MAX_URL_CHARS = 8192

_STEMSPLIT_CODES: dict[ErrorCode, str] = {
    ErrorCode.QUOTA_EXCEEDED: "RATE_LIMIT_EXCEEDED",
    ErrorCode.RATE_LIMITED: "RATE_LIMIT_EXCEEDED",
    ErrorCode.INTERNAL: "INTERNAL_ERROR",
    ErrorCode.CONFIG_MISSING: "INTERNAL_ERROR",
}
_STEMSPLIT_STATUS: dict[ErrorCode, int] = {
    ErrorCode.FILE_TOO_LARGE: 400,
    ErrorCode.AUDIO_TOO_LONG: 400,
    ErrorCode.AUDIO_TOO_SHORT: 400,
    ErrorCode.UNSUPPORTED_FORMAT: 400,
}


def invalid(message: str) -> StemhubError:
    return StemhubError(ErrorCode.INVALID_REQUEST, message)


def error_json(
    error: StemhubError, dialect: Dialect, headers: dict[str, str] | None = None
) -> JSONResponse:
    out = dict(headers or {})
    if error.retry_after is not None:
        out["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    inner: dict[str, Any] = {"code": error.code.value, "message": error.message}
    status = error.http_status
    if dialect == "stemsplit":
        inner["code"] = getattr(error, "api_code", None) or _STEMSPLIT_CODES.get(
            error.code, error.code.value
        )
        status = _STEMSPLIT_STATUS.get(error.code, status)
    if error.retry_after is not None:
        inner["retryAfter"] = math.ceil(error.retry_after)
    return JSONResponse({"error": inner}, status_code=status, headers=out)


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip() or None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
    message = str(first.get("msg", "is not valid"))
    return f"{where}: {message}" if where else message


def _refuse_constant(name: str) -> Any:
    raise invalid(f"The body contains {name}, which is not JSON: send a number or null.")


def _depth_ok(raw: str | bytes) -> bool:
    """True when brackets outside strings nest at most ``MAX_JSON_DEPTH`` deep (a linear scan)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return True
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def parse_json(raw: str | bytes) -> Any:
    """Strict JSON: no ``NaN``/``Infinity``, at most ``MAX_JSON_DEPTH`` deep; else 400.

    Python's ``json`` accepts ``NaN`` (which no other JSON parser reads back, so a
    webhook carrying it breaks its receiver) and recurses once per level (a 2 KB body
    nested a thousand deep raises ``RecursionError``); both are refused up front.
    """
    if not _depth_ok(raw):
        raise invalid(f"The body is nested more than {MAX_JSON_DEPTH} levels deep.")
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise invalid("The body is not valid JSON.") from None


def check_metadata(metadata: dict[str, Any] | None) -> None:
    """``metadata`` is echoed in every webhook: keep it small."""
    if metadata and len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise invalid(f"metadata is larger than {MAX_METADATA_BYTES // 1024} KB.")


def check_length(value: str | None, field: str, limit: int = MAX_NAME_CHARS) -> None:
    if value is not None and len(value) > limit:
        raise invalid(f"{field} is longer than {limit} characters.")


async def read_json(request: Request, model: type[M], *, allow_empty: bool = False) -> M:
    """The body as ``model``; 400 for anything that is not that JSON, 413 if too big."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > MAX_JSON_BYTES:
        raise StemhubError(ErrorCode.FILE_TOO_LARGE, "The JSON body is too large.")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise StemhubError(ErrorCode.FILE_TOO_LARGE, "The JSON body is too large.")
    if not raw.strip() and allow_empty:
        raw = b"{}"
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(_first_error(exc)) from None


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer.") from None
    if not low <= value <= high:
        raise invalid(f"{name} must be between {low} and {high}.")
    return value


class RateLimitedError(ApiError):
    """429: the key made too many requests; carries the window's headers."""

    def __init__(self, message: str, *, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__(
            ErrorCode.RATE_LIMITED, "RATE_LIMIT_EXCEEDED", message, retry_after=retry_after
        )
        self.headers = headers


class Guard:
    """Authenticates a request and counts it against its key's rate limit."""

    def __init__(self, bridge: BridgeFrontend) -> None:
        self.bridge = bridge
        limit = bridge.settings.rate_limit
        self.limit: tuple[int, float] | None = parse_limit(limit) if limit else None

    async def check(self, request: Request) -> tuple[ApiKey, dict[str, str]]:
        key = await self.bridge.keys.authenticate(token_of(request))
        if self.limit is None:
            return key, {}
        count, window_s = self.limit
        try:
            window = await self.bridge.hub.hit_rate_window(
                f"n8n_bridge:{key.id}", limit=count, window_s=window_s
            )
        except SQLAlchemyError as exc:
            # the limit protects the hub; a store too busy to count must not refuse work
            log.warning("rate limit not counted (%s); letting the request through", exc)
            return key, {}
        headers = window.headers()
        if window.exceeded:
            wait = window.retry_after(time.time())
            raise RateLimitedError(
                f"Too many requests: this key may make {count} per "
                f"{window_s:g} seconds. Try again in {wait:g} seconds.",
                retry_after=wait,
                headers=headers,
            )
        return key, headers


def endpoint(
    guard: Guard, dialect: Dialect, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: auth and rate limit first, every refusal as the dialect's envelope."""

    async def run(request: Request) -> Response:
        headers: dict[str, str] = {}
        try:
            key, headers = await guard.check(request)
            response = await handler(request, key)
        except StemhubError as error:
            if isinstance(error, RateLimitedError):
                headers = error.headers
            return error_json(error, dialect, headers)
        except SQLAlchemyError as exc:
            log.warning("store unavailable for %s: %s", request.url.path, exc)
            busy = StemhubError(
                ErrorCode.BACKEND_UNAVAILABLE,
                "The hub is busy; try again in a moment.",
                retry_after=1,
            )
            return error_json(busy, dialect, headers)
        response.headers.update(headers)
        return response

    return run


def open_endpoint(
    dialect: Dialect, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint without an API key (presigned uploads): refusals still as envelopes."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except StemhubError as error:
            return error_json(error, dialect)

    return run


def route(path: str, call: Callable[[Request], Awaitable[Response]], *methods: str) -> Route:
    return Route(path, call, methods=list(methods))


__all__ = [
    "MAX_JSON_DEPTH",
    "Dialect",
    "Guard",
    "check_length",
    "check_metadata",
    "endpoint",
    "error_json",
    "invalid",
    "open_endpoint",
    "parse_json",
    "query_int",
    "read_json",
    "route",
    "token_of",
]
