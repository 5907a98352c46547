"""INTERACTION_CREATE payloads shaped like Discord's API documentation describes them.

Slash commands (type 2, chat input) with an attachment option and its ``resolved`` data,
message context-menu commands (type 2, command type 3, ``target_id`` plus the resolved
message) and component clicks (type 3, with the message that carries the component).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import discord

from tests.fakes.discord import (
    APP_ID,
    BOT_USER,
    CHANNEL_ID,
    GUILD_ID,
    OTHER_USER_ID,
    USER_ID,
)

__all__ = ["CHANNEL_ID", "GUILD_ID", "OTHER_USER_ID", "USER_ID"]

ALL_PERMISSIONS = "2251799813685247"
MANAGE_GUILD = 1 << 5
SEND_MESSAGES = 1 << 11

_counter = itertools.count(1)


def snowflake(at: datetime | None = None) -> int:
    """A snowflake for ``at`` (default now), unique within the test run."""
    return discord.utils.time_snowflake(at or datetime.now(UTC)) + next(_counter)


def user(user_id: int = USER_ID, name: str = "alice") -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name.title(),
        "avatar": None,
        "public_flags": 0,
    }


def member(
    user_id: int = USER_ID, *, roles: list[int] | None = None, permissions: int = SEND_MESSAGES
) -> dict[str, Any]:
    return {
        "user": user(user_id),
        "roles": [str(r) for r in roles or []],
        "joined_at": "2025-01-01T00:00:00.000000+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": str(permissions),
    }


def attachment(
    name: str, size: int, url: str, content_type: str | None = "audio/wav"
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(snowflake()),
        "filename": name,
        "size": size,
        "url": url,
        "proxy_url": url.replace("/cdn/", "/media/"),
        "ephemeral": True,
    }
    if content_type is not None:
        data["content_type"] = content_type
    return data


def _base(
    *,
    kind: int,
    data: dict[str, Any],
    token: str | None = None,
    created: datetime | None = None,
    guild: bool = True,
    channel_id: int = CHANNEL_ID,
    roles: list[int] | None = None,
    permissions: int = SEND_MESSAGES,
    user_id: int = USER_ID,
    size_limit: int = 10 * 1024 * 1024,
    thread_of: int | None = None,
    guild_id: int = GUILD_ID,
) -> dict[str, Any]:
    interaction_id = snowflake(created)
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(APP_ID),
        "type": kind,
        "data": data,
        "token": token or f"itoken-{interaction_id}",
        "version": 1,
        "app_permissions": ALL_PERMISSIONS,
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": size_limit,
        "channel_id": str(channel_id),
    }
    if guild:
        payload.update(
            guild_id=str(guild_id),
            guild_locale="en-US",
            guild={"id": str(guild_id), "locale": "en-US", "features": []},
            channel={
                "id": str(channel_id),
                "type": 0,
                "guild_id": str(guild_id),
                "name": "music",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "flags": 0,
            }
            if thread_of is None
            else {
                "id": str(channel_id),
                "type": 11,
                "guild_id": str(guild_id),
                "name": "a thread",
                "parent_id": str(thread_of),
                "owner_id": str(user_id),
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": "2026-11-21T09:00:00.000000+00:00",
                    "locked": False,
                },
                "message_count": 1,
                "member_count": 1,
                "rate_limit_per_user": 0,
                "flags": 0,
            },
            member=member(user_id, roles=roles, permissions=permissions),
            authorizing_integration_owners={"0": str(guild_id)},
            context=0,
        )
    else:
        payload.update(
            user=user(user_id),
            channel={"id": str(channel_id), "type": 1, "recipients": [user(user_id)]},
            authorizing_integration_owners={"0": "0"},
            context=1,
        )
    return payload


def split_command(
    *,
    file: dict[str, Any] | None = None,
    url: str | None = None,
    stems: str | None = None,
    fmt: str | None = None,
    dm: bool | None = None,
    **base: Any,
) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    resolved: dict[str, Any] = {}
    if file is not None:
        options.append({"name": "file", "type": 11, "value": file["id"]})
        resolved["attachments"] = {file["id"]: file}
    if url is not None:
        options.append({"name": "url", "type": 3, "value": url})
    if stems is not None:
        options.append({"name": "stems", "type": 3, "value": stems})
    if fmt is not None:
        options.append({"name": "format", "type": 3, "value": fmt})
    if dm is not None:
        options.append({"name": "dm", "type": 5, "value": dm})
    data: dict[str, Any] = {
        "id": str(snowflake()),
        "name": "split",
        "type": 1,
        "options": options,
    }
    if resolved:
        data["resolved"] = resolved
    return _base(kind=2, data=data, **base)


def queue_command(**base: Any) -> dict[str, Any]:
    data = {
        "id": str(snowflake()),
        "name": "stemhub",
        "type": 1,
        "options": [{"name": "queue", "type": 1, "options": []}],
    }
    return _base(kind=2, data=data, **base)


def channel_message(
    *, content: str = "", attachments: list[dict[str, Any]] | None = None, author_id: int = 0
) -> dict[str, Any]:
    return {
        "id": str(snowflake()),
        "channel_id": str(CHANNEL_ID),
        "type": 0,
        "content": content,
        "author": user(author_id or 1400000000000000099, "bob"),
        "embeds": [],
        "attachments": attachments or [],
        "components": [],
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": False,
        "pinned": False,
        "tts": False,
        "timestamp": "2026-11-21T09:00:00.000000+00:00",
        "edited_timestamp": None,
        "flags": 0,
    }


def split_stems_menu(message: dict[str, Any], **base: Any) -> dict[str, Any]:
    data = {
        "id": str(snowflake()),
        "name": "Split stems",
        "type": 3,
        "target_id": message["id"],
        "resolved": {"messages": {message["id"]: message}},
    }
    return _base(kind=2, data=data, **base)


def component_click(
    message: dict[str, Any], custom_id: str, *, values: list[str] | None = None, **base: Any
) -> dict[str, Any]:
    """A click on a component of ``message`` (as the bot posted it), from its channel.

    Discord sends a component interaction with the ``channel_id`` of the message clicked
    (``interactions/receiving-and-responding#interaction-object``).
    """
    if message.get("channel_id") is not None:
        base.setdefault("channel_id", int(message["channel_id"]))
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": 3 if values else 2}
    if values is not None:
        data["values"] = values
    payload = _base(kind=3, data=data, **base)
    payload["message"] = {**message, "author": BOT_USER}
    return payload


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
