"""One error hierarchy with stable codes.

Every failure a person can see carries a ``code`` that never changes between releases
(frontends, the HTTP bridge and scripts match on it) and a ``message`` written for the
person who typed the command. ``operator_message`` is for whoever runs the hub (logs,
``stemhub doctor``); it never reaches a chat user.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable error codes. Add new ones at the end; never rename one."""

    INVALID_REQUEST = "INVALID_REQUEST"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    CORRUPT_AUDIO = "CORRUPT_AUDIO"
    AUDIO_TOO_LONG = "AUDIO_TOO_LONG"
    AUDIO_TOO_SHORT = "AUDIO_TOO_SHORT"
    UNSUPPORTED_STEM_SET = "UNSUPPORTED_STEM_SET"
    UNSUPPORTED_SOURCE = "UNSUPPORTED_SOURCE"
    SOURCE_UNREACHABLE = "SOURCE_UNREACHABLE"
    SOURCE_FORBIDDEN = "SOURCE_FORBIDDEN"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    BACKEND_ERROR = "BACKEND_ERROR"
    BACKEND_AUTH = "BACKEND_AUTH"
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    JOB_EXPIRED = "JOB_EXPIRED"
    JOB_CANCELLED = "JOB_CANCELLED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    CONFIG_MISSING = "CONFIG_MISSING"
    INTERNAL = "INTERNAL"


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.FILE_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_FORMAT: 415,
    ErrorCode.CORRUPT_AUDIO: 422,
    ErrorCode.AUDIO_TOO_LONG: 422,
    ErrorCode.AUDIO_TOO_SHORT: 422,
    ErrorCode.UNSUPPORTED_STEM_SET: 422,
    ErrorCode.UNSUPPORTED_SOURCE: 422,
    ErrorCode.SOURCE_UNREACHABLE: 422,
    ErrorCode.SOURCE_FORBIDDEN: 422,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.BACKEND_UNAVAILABLE: 503,
    ErrorCode.BACKEND_ERROR: 502,
    ErrorCode.BACKEND_AUTH: 502,
    ErrorCode.INSUFFICIENT_CREDITS: 402,
    ErrorCode.JOB_EXPIRED: 410,
    ErrorCode.JOB_CANCELLED: 409,
    ErrorCode.DELIVERY_FAILED: 502,
    ErrorCode.CONFIG_MISSING: 500,
    ErrorCode.INTERNAL: 500,
}


class StemhubError(Exception):
    """A failure with a stable code and a message for the person who asked.

    ``retryable`` says whether running the same step again may succeed (a 503 from a
    backend, a timeout); ``retry_after`` is how many seconds to wait first, when known
    (quota refusals and 429s always set it).
    """

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        operator_message: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.operator_message = operator_message
        self.details = dict(details or {})

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 500)

    def to_dict(self) -> dict[str, Any]:
        """The public shape, as the StemSplit error envelope's inner object."""
        out: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.retry_after is not None:
            out["retryAfter"] = round(self.retry_after, 3)
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"


class RequestRejected(StemhubError):
    """A request refused before any work started (validation, policy, quota)."""


class StaleJob(StemhubError):
    """A job write refused: the stored job moved on since this copy was read.

    Another writer (a hub that took over an expired lease, a cancel, a retry) wrote a
    newer version; the holder of the stale copy must stop working on the job, not
    overwrite it.
    """

    def __init__(self, job_id: str, version: int) -> None:
        super().__init__(
            ErrorCode.CONFLICT,
            "This job changed meanwhile; look at it again.",
            operator_message=f"stale write of job {job_id} at version {version}",
        )
        self.job_id = job_id
        self.version = version


class TransitionRefused(StemhubError):
    """A status or stage change the job lifecycle does not allow."""

    def __init__(self, job_id: str, what: str) -> None:
        super().__init__(
            ErrorCode.CONFLICT,
            f"Job {job_id} cannot {what}.",
            operator_message=f"job {job_id}: refused transition: {what}",
        )


class ConfigError(StemhubError):
    """A setting the hub or a plugin needs is missing or wrong."""

    def __init__(self, setting: str, why: str) -> None:
        super().__init__(
            ErrorCode.CONFIG_MISSING,
            f"Setting {setting} is {why}.",
            operator_message=f"Set {setting} in the environment, .env or stemhub.toml.",
            details={"setting": setting},
        )
        self.setting = setting


__all__ = [
    "ConfigError",
    "ErrorCode",
    "RequestRejected",
    "StaleJob",
    "StemhubError",
    "TransitionRefused",
]
