"""Who may use stemhub where: allowed channels, DMs and user groups.

Checked through ``stemhub_validate_request`` so a refusal happens before anything is
stored or counted against a quota. ``allowed_channels``, when set, covers DMs too: a DM
is allowed only if it is listed (and ``allow_dms`` is on). Group membership comes from
one ``usergroups.list(include_users=true)`` call, cached for ``group_cache_s``; a failed
lookup is remembered for ``GROUP_FAILURE_CACHE_S`` so a broken scope does not cost a Slack
call per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from stemhub import ErrorCode, Origin, RequestRejected
from stemhub_slack.settings import SlackSettings

GROUP_FAILURE_CACHE_S = 60.0


def is_dm(channel_id: str | None) -> bool:
    return bool(channel_id) and str(channel_id).startswith("D")


@dataclass
class _Groups:
    """One workspace's allowed-group members, as last looked up."""

    members: frozenset[str] = frozenset()
    names: list[str] = field(default_factory=list)
    loaded_at: float = float("-inf")
    failure: RequestRejected | None = None
    failed_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class AccessPolicy:
    def __init__(self, settings: SlackSettings, client: Callable[[], AsyncWebClient]) -> None:
        self.settings = settings
        self._client = client
        self._groups: dict[str, _Groups] = {}

    async def check(self, origin: Origin) -> None:
        """Raise :class:`RequestRejected` (FORBIDDEN) when ``origin`` may not split."""
        settings = self.settings
        channel = origin.channel_id
        if is_dm(channel) and not settings.allow_dms:
            raise RequestRejected(
                ErrorCode.FORBIDDEN, "Splitting in DMs is turned off in this workspace."
            )
        if settings.allowed_channels and channel not in settings.allowed_channels:
            where = ", ".join(f"<#{c}>" for c in settings.allowed_channels)
            raise RequestRejected(
                ErrorCode.FORBIDDEN, f"I can't split songs in this channel. Try me in {where}."
            )
        if settings.allowed_user_groups:
            groups = self._groups.setdefault(origin.guild_id or "", _Groups())
            members = await self.group_members(groups)
            if origin.user_id not in members:
                names = ", ".join(f"@{name}" for name in groups.names) or "an allowed group"
                raise RequestRejected(
                    ErrorCode.FORBIDDEN,
                    f"Only members of {names} can split songs here; ask an admin to add you.",
                )

    async def group_members(self, groups: _Groups) -> frozenset[str]:
        """Users in any allowed group (by id or handle), refreshed every ``group_cache_s``."""
        async with groups.lock:
            now = time.monotonic()
            if now - groups.loaded_at < self.settings.group_cache_s:
                return groups.members
            if groups.failure is not None and now - groups.failed_at < GROUP_FAILURE_CACHE_S:
                raise groups.failure
            wanted = {entry.lstrip("@").lower() for entry in self.settings.allowed_user_groups}
            try:
                response = await self._client().usergroups_list(include_users=True)
            except (SlackClientError, aiohttp.ClientError, TimeoutError) as error:
                reason = (
                    error.response.get("error")
                    if isinstance(error, SlackApiError) and isinstance(error.response.data, dict)
                    else type(error).__name__
                )
                groups.failure = RequestRejected(
                    ErrorCode.FORBIDDEN,
                    "I can't check who may use me right now; try again in a minute.",
                    operator_message=(
                        f"usergroups.list failed ({reason}); the app "
                        "needs the usergroups:read scope for allowed_user_groups."
                    ),
                )
                groups.failed_at = now
                raise groups.failure from None
            groups.failure = None
            members: set[str] = set()
            names: list[str] = []
            for group in response.get("usergroups") or []:
                ids = {str(group.get("id", "")).lower(), str(group.get("handle", "")).lower()}
                if ids & wanted:
                    members.update(group.get("users") or [])
                    names.append(str(group.get("handle") or group.get("id")))
            groups.members = frozenset(members)
            groups.names = names
            groups.loaded_at = time.monotonic()
            return groups.members


__all__ = ["AccessPolicy", "is_dm"]
