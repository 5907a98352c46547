"""Per-guild access control: where /split works and who may use it.

The facts come from the interaction (channel, thread parent, the member's role ids and
permissions) and travel in ``origin.context``, so the same check runs before the command
is deferred and again in the hub's ``stemhub_validate_request`` hook. Members who may
manage the server are never locked out by this policy.
"""

from __future__ import annotations

from stemhub import ErrorCode, Origin, RequestRejected
from stemhub_discord.settings import DiscordSettings


def check_access(settings: DiscordSettings, origin: Origin) -> None:
    """Raise RequestRejected(FORBIDDEN) when the guild's policy refuses this request."""
    if origin.guild_id is None:
        return
    policy = settings.policy_for(origin.guild_id)
    context = origin.context
    if context.get("manage_guild"):
        return
    if policy.allowed_channels:
        here = {int(x) for x in (origin.channel_id, context.get("parent_channel_id")) if x}
        if not here & set(policy.allowed_channels):
            where = ", ".join(f"<#{channel}>" for channel in policy.allowed_channels[:5])
            raise RequestRejected(
                ErrorCode.FORBIDDEN, f"Splitting is not enabled in this channel; use {where}."
            )
    if policy.allowed_roles:
        roles = {int(role) for role in context.get("roles", [])}
        if not roles & set(policy.allowed_roles):
            which = ", ".join(f"<@&{role}>" for role in policy.allowed_roles[:5])
            raise RequestRejected(
                ErrorCode.FORBIDDEN, f"You need one of these roles to split songs here: {which}."
            )


__all__ = ["check_access"]
