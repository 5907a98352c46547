"""Who may use stemhub where: allowed channels, DMs and user groups.

Checked through ``stemhub_validate_request`` so a refusal happens before anything is
stored or counted against a quota. Group membership comes from one
``usergroups.list(include_users=true)`` call, cached for ``group_cache_s``.
"""

from __future__ import annotations

import asyncio
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from stemhub.errors import ErrorCode, RequestRejected
from stemhub.models import Origin
from stemhub_slack.settings import SlackSettings


def is_dm(channel_id: str | None) -> bool:
    return bool(channel_id) and str(channel_id).startswith("D")


class AccessPolicy:
    def __init__(self, settings: SlackSettings, client: AsyncWebClient) -> None:
        self.settings = settings
        self.client = client
        self._members: frozenset[str] = frozenset()
        self._group_names: list[str] = []
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def check(self, origin: Origin) -> None:
        """Raise :class:`RequestRejected` (FORBIDDEN) when ``origin`` may not split."""
        settings = self.settings
        channel = origin.channel_id
        if is_dm(channel):
            if not settings.allow_dms:
                raise RequestRejected(
                    ErrorCode.FORBIDDEN, "Splitting in DMs is turned off in this workspace."
                )
        elif settings.allowed_channels and channel not in settings.allowed_channels:
            where = ", ".join(f"<#{c}>" for c in settings.allowed_channels)
            raise RequestRejected(
                ErrorCode.FORBIDDEN, f"I can't split songs in this channel. Try me in {where}."
            )
        if settings.allowed_user_groups:
            members = await self.group_members()
            if origin.user_id not in members:
                names = ", ".join(f"@{name}" for name in self._group_names) or "an allowed group"
                raise RequestRejected(
                    ErrorCode.FORBIDDEN,
                    f"Only members of {names} can split songs here; ask an admin to add you.",
                )

    async def group_members(self) -> frozenset[str]:
        """Users in any allowed group (by id or handle), refreshed every ``group_cache_s``."""
        async with self._lock:
            if time.monotonic() - self._loaded_at < self.settings.group_cache_s:
                return self._members
            wanted = {entry.lstrip("@").lower() for entry in self.settings.allowed_user_groups}
            try:
                response = await self.client.usergroups_list(include_users=True)
            except SlackApiError as error:
                raise RequestRejected(
                    ErrorCode.FORBIDDEN,
                    "I can't check who may use me right now; try again in a minute.",
                    operator_message=(
                        f"usergroups.list failed ({error.response.get('error')}); the app "
                        "needs the usergroups:read scope for allowed_user_groups."
                    ),
                ) from None
            members: set[str] = set()
            names: list[str] = []
            for group in response.get("usergroups") or []:
                ids = {str(group.get("id", "")).lower(), str(group.get("handle", "")).lower()}
                if ids & wanted:
                    members.update(group.get("users") or [])
                    names.append(str(group.get("handle") or group.get("id")))
            self._members = frozenset(members)
            self._group_names = names
            self._loaded_at = time.monotonic()
            return self._members


__all__ = ["AccessPolicy", "is_dm"]
