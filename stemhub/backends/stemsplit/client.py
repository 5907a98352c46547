"""The StemSplit HTTP client: paced requests, safe retries, streamed files, error mapping.

Every API request goes through one shared :class:`RequestPacer`. A 429 closes the pacer
for everyone for ``Retry-After`` seconds and the request is sent again (it was refused,
not processed), at most ``max_rate_limit_retries`` times. A 5xx, a timeout or an
unreadable answer is replayed only when replaying cannot do anything twice: GET and
DELETE, ``POST /upload`` (a ticket nobody uses costs nothing), and creates that carry an
Idempotency-Key. A request that never reached the server (connection refused) is always
safe to send again.

Uploads and downloads talk to the presigned storage URLs: no Authorization header (the
storage rejects a request signed twice), not paced (the storage is not the API), and
streamed from or to disk in chunks so a 50 MB file never sits in memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from stemhub.backends.stemsplit.pacing import PRIORITY_START, Clock, RequestPacer
from stemhub.errors import ErrorCode, StemhubError
from stemhub.retry import RetryPolicy
from stemhub.stemsplit_wire import (
    IDEMPOTENCY_HEADER,
    MAX_DURATION_S,
    MAX_UPLOAD_BYTES,
    ApiErrorCode,
    ErrorEnvelope,
    UploadRequest,
    UploadTicket,
    content_type_for,
    parse_rate_limit,
)

log = logging.getLogger("stemhub.backends.stemsplit")

KEY_SETTINGS_URL = "https://stemsplit.io/app/settings/api"


class StemSplitTuning(BaseModel):
    """Knobs of the StemSplit backend; defaults follow the hosted API's documented limits.

    Durations are in clock seconds (see :class:`~stemhub.backends.stemsplit.pacing.Clock`).
    """

    model_config = ConfigDict(frozen=True)

    rate_limit: int = 60
    rate_window_s: float = 60.0
    burst: int | None = None
    rate_margin: float = 0.1
    max_rate_limit_retries: int = 5
    max_retry_after_s: float = 120.0
    max_replays: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    poll_min_s: float = 2.0
    poll_max_s: float = 30.0
    poll_budget_share: float = 0.5
    default_estimate_s: float = 60.0
    webhook_grace_s: float = 60.0
    webhook_retry_s: float = 600.0
    request_timeout_s: float = 30.0
    transfer_timeout_s: float = 600.0
    chunk_bytes: int = 256 * 1024
    max_connections: int = 64


@dataclass
class ClientStats:
    requests: int = 0
    rate_limited: int = 0
    replays: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    downloads: int = 0


_USER_MESSAGES_400: dict[str, tuple[ErrorCode, str]] = {
    ApiErrorCode.FILE_TOO_LARGE: (
        ErrorCode.FILE_TOO_LARGE,
        f"That file is too big for the separation service "
        f"({MAX_UPLOAD_BYTES // (1024 * 1024)} MB at most). Try a shorter or compressed file.",
    ),
    ApiErrorCode.AUDIO_TOO_LONG: (
        ErrorCode.AUDIO_TOO_LONG,
        f"That audio is longer than {MAX_DURATION_S / 60:.0f} minutes, the most the "
        "separation service takes. Trim it and try again.",
    ),
    ApiErrorCode.AUDIO_TOO_SHORT: (
        ErrorCode.AUDIO_TOO_SHORT,
        "That audio is too short to separate. Send a longer clip.",
    ),
    ApiErrorCode.UNSUPPORTED_FORMAT: (
        ErrorCode.UNSUPPORTED_FORMAT,
        "The separation service cannot read that file type. "
        "Send MP3, WAV, FLAC, M4A, OGG, Opus or WebM.",
    ),
}

_UNAVAILABLE = "The separation service is not answering right now. Try again in a few minutes."


def _unavailable(operator: str) -> StemhubError:
    return StemhubError(
        ErrorCode.BACKEND_UNAVAILABLE, _UNAVAILABLE, retryable=True, operator_message=operator
    )


def error_for_response(response: httpx.Response, what: str) -> StemhubError:
    """A StemhubError for a non-2xx API answer, worded for whoever reads it.

    The person who typed the command reads ``message``; the operator reads
    ``operator_message`` (bad key, empty account). Neither ever contains the key.
    """
    status = response.status_code
    code = ""
    remote_message = ""
    extra: dict[str, Any] = {}
    try:
        body = ErrorEnvelope.model_validate_json(response.content).error
    except ValidationError:
        pass
    else:
        code, remote_message = body.code, body.message
        extra = {"required_seconds": body.required_seconds, "purchase_url": body.purchase_url}
    details: dict[str, Any] = {"status": status, "api_code": code or None}
    said = f"StemSplit answered {status} {code} to {what}: {remote_message}".strip()
    if status == 400 and code in _USER_MESSAGES_400:
        mapped, message = _USER_MESSAGES_400[code]
        return StemhubError(mapped, message, operator_message=said, details=details)
    if status in (400, 422):
        return StemhubError(
            ErrorCode.INVALID_REQUEST,
            f"The separation service refused the request: {remote_message or 'no reason given'}.",
            operator_message=said,
            details=details,
        )
    if status in (401, 403):
        return StemhubError(
            ErrorCode.BACKEND_AUTH,
            "The separation service is not set up correctly right now; the operator has "
            "been told. Try again later.",
            operator_message=(
                f"{said}. The API key in STEMSPLIT_API_KEY is missing, wrong or revoked: "
                f"create a new one at {KEY_SETTINGS_URL}."
            ),
            details=details,
        )
    if status == 402:
        required = extra.get("required_seconds")
        purchase = extra.get("purchase_url") or "https://stemsplit.io/pricing"
        need = f"{required} s of audio credit" if required is not None else "more credit"
        return StemhubError(
            ErrorCode.INSUFFICIENT_CREDITS,
            "The separation service account is out of credit; the operator has been told.",
            operator_message=f"{said}. This job needs {need}; buy more at {purchase}.",
            details={**details, "required_seconds": required, "purchase_url": purchase},
        )
    if status == 404:
        return StemhubError(
            ErrorCode.NOT_FOUND,
            "The separation service no longer has this job; it may have expired.",
            operator_message=said,
            details=details,
        )
    if status == 409:
        return StemhubError(
            ErrorCode.CONFLICT,
            "The separation service is already handling this request.",
            operator_message=said,
            details=details,
        )
    if status >= 500:
        return StemhubError(
            ErrorCode.BACKEND_UNAVAILABLE,
            _UNAVAILABLE,
            retryable=True,
            operator_message=said,
            details=details,
        )
    return StemhubError(
        ErrorCode.BACKEND_ERROR,
        "The separation service could not handle this request.",
        operator_message=said,
        details=details,
    )


class LinkRefused(Exception):
    """The storage refused a presigned link (expired or revoked): get fresh links."""

    def __init__(self, status: int) -> None:
        super().__init__(f"storage answered {status}")
        self.status = status


class StemSplitClient:
    """One pooled ``httpx.AsyncClient`` and one pacer for all jobs of one hub."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        tuning: StemSplitTuning,
        clock: Clock,
        pacer: RequestPacer,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.tuning = tuning
        self.clock = clock
        self.pacer = pacer
        self.stats = ClientStats()
        self._rng = random.Random()
        self.retries = RetryPolicy(
            attempts=tuning.max_replays + 1,
            first_delay_s=tuning.backoff_base_s,
            max_delay_s=tuning.backoff_max_s,
            max_retry_after_s=tuning.max_retry_after_s,
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(tuning.request_timeout_s, pool=None),
            limits=httpx.Limits(
                max_connections=tuning.max_connections,
                max_keepalive_connections=tuning.max_connections,
            ),
            headers={"User-Agent": "stemhub-stemsplit/0.1"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"StemSplitClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    def _backoff(self, attempt: int) -> float:
        return self.retries.delay(attempt, rng=self._rng)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        replay_safe: bool | None = None,
        priority: int = PRIORITY_START,
    ) -> Any:
        """Send one API request through the pacer; the decoded JSON body, or StemhubError."""
        safe = (
            replay_safe
            if replay_safe is not None
            else method in ("GET", "HEAD", "DELETE") or idempotency_key is not None
        )
        headers = {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Accept": "application/json",
        }
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        query = {k: v for k, v in (params or {}).items() if v is not None}
        what = f"{method} {path}"
        url = self.base_url + path
        limited = 0
        replays = 0
        while True:
            await self.pacer.acquire(priority)
            self.stats.requests += 1
            try:
                response = await self._http.request(
                    method, url, json=json, params=query or None, headers=headers
                )
            except httpx.TransportError as exc:
                never_sent = isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                if (safe or never_sent) and replays < self.tuning.max_replays:
                    replays += 1
                    self.stats.replays += 1
                    await self.clock.sleep(self._backoff(replays))
                    continue
                raise _unavailable(f"StemSplit {what}: {type(exc).__name__}") from exc
            info = parse_rate_limit(response.headers)
            self.pacer.observe(info)
            status = response.status_code
            if status == 429:
                self.stats.rate_limited += 1
                wait = info.retry_after
                if wait is None:
                    wait = info.reset_in(self.clock.time())
                wait = self.retries.delay(limited + 1, wait, rng=self._rng)
                if limited < self.tuning.max_rate_limit_retries:
                    limited += 1
                    self.pacer.pause(wait)
                    continue
                raise StemhubError(
                    ErrorCode.RATE_LIMITED,
                    "The separation service is busy right now. Try again in a minute.",
                    retryable=True,
                    retry_after=max(wait, 1.0),
                    operator_message=f"StemSplit kept answering 429 to {what} "
                    f"after {limited} waits; lower the hub's concurrency.",
                )
            if status >= 500 and safe and replays < self.tuning.max_replays:
                replays += 1
                self.stats.replays += 1
                await self.clock.sleep(self._backoff(replays))
                continue
            if status >= 400:
                raise error_for_response(response, what)
            if not response.content:
                return {}
            try:
                return response.json()
            except ValueError:
                if safe and replays < self.tuning.max_replays:
                    replays += 1
                    self.stats.replays += 1
                    await self.clock.sleep(self._backoff(replays))
                    continue
                raise StemhubError(
                    ErrorCode.BACKEND_ERROR,
                    "The separation service sent an answer stemhub could not read. "
                    "Try again in a minute.",
                    retryable=True,
                    operator_message=f"StemSplit {what}: {status} with a body that is not JSON",
                ) from None

    async def upload(self, path: Path, filename: str) -> UploadTicket:
        """``POST /upload`` then a streamed PUT of ``path``; the ticket whose key was filled.

        A ticket that expired before the PUT (403 from the storage) is replaced once.
        """
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > MAX_UPLOAD_BYTES:
            mapped, message = _USER_MESSAGES_400[ApiErrorCode.FILE_TOO_LARGE]
            raise StemhubError(mapped, message, details={"size_bytes": size})
        content_type = content_type_for(filename or path.name)
        body = UploadRequest(filename=filename or path.name, content_type=content_type)
        for ticket_attempt in range(2):
            data = await self.request("POST", "/upload", json=body.to_wire(), replay_safe=True)
            try:
                ticket = UploadTicket.model_validate(data)
            except ValidationError as exc:
                raise StemhubError(
                    ErrorCode.BACKEND_ERROR,
                    "The separation service sent an upload answer stemhub could not read.",
                    retryable=True,
                    operator_message=f"StemSplit POST /upload: {exc.error_count()} bad fields",
                ) from None
            status = await self._put_file(ticket, path, size, content_type)
            if status < 300:
                self.stats.uploads += 1
                self.stats.upload_bytes += size
                return ticket
            if status == 403 and ticket_attempt == 0:
                log.info("StemSplit upload URL refused the PUT (expired?); asking for a new one")
                continue
            if status == 413:
                mapped, message = _USER_MESSAGES_400[ApiErrorCode.FILE_TOO_LARGE]
                raise StemhubError(mapped, message, details={"size_bytes": size})
            raise StemhubError(
                ErrorCode.BACKEND_ERROR,
                "The upload to the separation service failed. Try again in a minute.",
                retryable=True,
                operator_message=f"StemSplit storage answered {status} to the upload PUT",
            )
        raise AssertionError("unreachable")

    async def _put_file(
        self, ticket: UploadTicket, path: Path, size: int, content_type: str
    ) -> int:
        headers = {
            "Content-Type": ticket.content_type or content_type,
            "Content-Length": str(size),
        }
        timeout = httpx.Timeout(self.tuning.transfer_timeout_s, pool=None)
        for attempt in range(self.tuning.max_replays + 1):
            with path.open("rb") as handle:
                try:
                    response = await self._http.put(
                        ticket.upload_url,
                        content=_read_chunks(handle, self.tuning.chunk_bytes),
                        headers=headers,
                        timeout=timeout,
                    )
                except httpx.TransportError as exc:
                    if attempt < self.tuning.max_replays:
                        self.stats.replays += 1
                        await self.clock.sleep(self._backoff(attempt + 1))
                        continue
                    raise _unavailable(f"StemSplit upload PUT: {type(exc).__name__}") from exc
            if response.status_code >= 500 and attempt < self.tuning.max_replays:
                self.stats.replays += 1
                await self.clock.sleep(self._backoff(attempt + 1))
                continue
            return response.status_code
        raise AssertionError("unreachable")

    async def download(self, url: str, target: Path) -> int:
        """Stream a presigned output link into ``target``; bytes written.

        Written to a sibling ``.part`` file and renamed, so a crash never leaves a
        half-written stem under the final name. Raises :class:`LinkRefused` on a 4xx so
        the caller can refresh an expired link.
        """
        part = target.with_name(target.name + ".part")
        timeout = httpx.Timeout(self.tuning.transfer_timeout_s, pool=None)
        for attempt in range(self.tuning.max_replays + 1):
            try:
                async with self._http.stream("GET", url, timeout=timeout) as response:
                    status = response.status_code
                    if status >= 500 and attempt < self.tuning.max_replays:
                        await self.clock.sleep(self._backoff(attempt + 1))
                        continue
                    if status >= 500:
                        raise _unavailable(f"StemSplit output download: {status}")
                    if status >= 400:
                        raise LinkRefused(status)
                    written = 0
                    with part.open("wb") as handle:
                        async for chunk in response.aiter_bytes(self.tuning.chunk_bytes):
                            await asyncio.to_thread(handle.write, chunk)
                            written += len(chunk)
            except httpx.TransportError as exc:
                part.unlink(missing_ok=True)
                if attempt < self.tuning.max_replays:
                    await self.clock.sleep(self._backoff(attempt + 1))
                    continue
                raise _unavailable(f"StemSplit output download: {type(exc).__name__}") from exc
            os.replace(part, target)
            self.stats.downloads += 1
            return written
        raise AssertionError("unreachable")


async def _read_chunks(handle: IO[bytes], size: int) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, size):
        yield chunk


__all__ = [
    "ClientStats",
    "LinkRefused",
    "StemSplitClient",
    "StemSplitTuning",
    "error_for_response",
]
