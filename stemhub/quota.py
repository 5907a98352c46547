"""Built-in quota policy: per user, channel, guild/workspace and API key, plus cooldowns.

Counters live in the store (:meth:`stemhub._store.Store.take_quota`), so a limit holds
across restarts and across hub instances sharing a database. A refusal says when the
person may try again.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from stemhub.errors import ErrorCode, RequestRejected
from stemhub.plugin.marker import hookimpl

if TYPE_CHECKING:
    from stemhub.hub import Hub
    from stemhub.models import JobRequest

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "s": 1, "m": 60, "h": 3600}


def parse_limit(text: str) -> tuple[int, float]:
    """``"20/hour"`` -> (20, 3600.0); ``"5/10minutes"`` -> (5, 600.0)."""
    count, _, period = text.replace(" ", "").partition("/")
    digits = "".join(ch for ch in period if ch.isdigit())
    unit = period[len(digits) :].lower().rstrip("s") or "s"
    unit = {"sec": "second", "min": "minute", "hr": "hour"}.get(unit, unit)
    if unit not in PERIODS or not count.isdigit():
        raise ValueError(f"quota {text!r} is not COUNT/PERIOD like '20/hour'")
    return int(count), PERIODS[unit] * (int(digits) if digits else 1)


def humanize_wait(seconds: float) -> str:
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(minutes / 60)
    return f"{hours} hours"


@hookimpl
async def stemhub_check_quota(hub: Hub, request: JobRequest) -> None:
    quota = hub.settings.quota
    origin = request.origin
    platform = origin.platform
    checks: list[tuple[str, str | None, str | None, str]] = [
        ("user", origin.user_id, quota.per_user, "You have"),
        ("channel", origin.channel_id, quota.per_channel, "This channel has"),
        ("guild", origin.guild_id, quota.per_guild, "This server has"),
        ("api_key", origin.api_key_id, quota.per_api_key, "This API key has"),
    ]
    if origin.user_id and quota.user_cooldown_s > 0:
        wait = await hub.store.take_quota(
            "cooldown", f"{platform}:{origin.user_id}", limit=1, window_s=quota.user_cooldown_s
        )
        if wait is not None:
            raise RequestRejected(
                ErrorCode.QUOTA_EXCEEDED,
                f"Slow down a little: you can split again in {humanize_wait(wait)}.",
                retry_after=wait,
            )
    for scope, subject, limit_text, who in checks:
        if not subject or not limit_text:
            continue
        limit, window = parse_limit(limit_text)
        wait = await hub.store.take_quota(
            scope, f"{platform}:{subject}", limit=limit, window_s=window
        )
        if wait is not None:
            raise RequestRejected(
                ErrorCode.QUOTA_EXCEEDED,
                f"{who} used all {limit} splits allowed per {_period_name(window)}; "
                f"try again in {humanize_wait(wait)}.",
                retry_after=wait,
                details={"scope": scope, "limit": limit, "windowSeconds": window},
            )


def _period_name(window: float) -> str:
    for name in ("day", "hour", "minute", "second"):
        if window == PERIODS[name]:
            return name
    return humanize_wait(window)


__all__ = ["humanize_wait", "parse_limit"]
