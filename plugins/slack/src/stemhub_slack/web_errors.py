"""Slack Web API failures as stemhub errors, so the hub knows which to retry.

Rate limits (429 ``Retry-After``), Slack's 5xx and broken connections are retryable
delivery failures; a revoked token or a missing scope is not, and names the fix for the
operator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from stemhub import ErrorCode, StemhubError

RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
"""Slack ``error`` values that a later attempt may get past."""
NOT_IN_CHANNEL = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
"""Errors that mean: this channel cannot take the message, use the person's DM."""
TOKEN_GONE = frozenset(
    {"token_revoked", "token_expired", "invalid_refresh_token", "invalid_auth", "account_inactive"}
)
"""Errors that mean: this token will not work again (nor a refresh of it)."""


def api_error(error: SlackApiError) -> str:
    """Slack's ``error`` value; ``http_<status>`` for an answer that is not JSON (a 503 page)."""
    data = error.response.data
    if not isinstance(data, dict):
        return f"http_{error.response.status_code}"
    return str(data.get("error") or "unknown_error")


def as_stemhub_error(error: Exception, method: str) -> StemhubError:
    """The :class:`StemhubError` for a failed Web API call of ``method``."""
    if isinstance(error, SlackApiError) and isinstance(error.response.data, dict):
        name = api_error(error)
        status = error.response.status_code
        retry_after: float | None = None
        header = error.response.headers.get("Retry-After") or error.response.headers.get(
            "retry-after"
        )
        if header is not None:
            with contextlib.suppress(ValueError):
                retry_after = float(header)
        retryable = status == 429 or status >= 500 or name in RETRYABLE_ERRORS
        needed = error.response.get("needed")
        hint = f"; the app needs the {needed} scope" if needed else ""
        if name in TOKEN_GONE:
            hint = "; the bot token no longer works: install the app in the workspace again"
        said = (
            "Slack did not accept the result message; it will be sent again."
            if retryable
            else "Slack refused the result message."
        )
        return StemhubError(
            ErrorCode.DELIVERY_FAILED,
            said,
            retryable=retryable,
            retry_after=retry_after,
            operator_message=f"{method} failed: {name} (HTTP {status}){hint}",
        )
    if isinstance(error, SlackApiError):
        return StemhubError(
            ErrorCode.DELIVERY_FAILED,
            "Slack did not answer properly; the result will be sent again.",
            retryable=True,
            operator_message=f"{method} failed: HTTP {error.response.status_code}",
        )
    return StemhubError(
        ErrorCode.DELIVERY_FAILED,
        "Slack could not be reached; the result will be sent again.",
        retryable=True,
        operator_message=f"{method} failed: {type(error).__name__}: {error}",
    )


@contextlib.contextmanager
def web_api(method: str) -> Iterator[None]:
    """Raise a :class:`StemhubError` for any failure of the Web API calls inside."""
    try:
        yield
    except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as error:
        raise as_stemhub_error(error, method) from error


__all__ = [
    "NOT_IN_CHANNEL",
    "RETRYABLE_ERRORS",
    "TOKEN_GONE",
    "api_error",
    "as_stemhub_error",
    "web_api",
]
