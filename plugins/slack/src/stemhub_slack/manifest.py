"""The Slack app manifest: exactly the scopes, command, shortcut and events stemhub uses.

Paste the output of ``stemhub slack manifest`` into "Create New App > From a manifest".
Each scope is here for one reason (see :data:`SCOPES`); nothing is asked "just in case".
"""

from __future__ import annotations

from typing import Any

from stemhub_slack.settings import EVENTS_PATH, REDIRECT_PATH, SlackSettings

SHORTCUT_CALLBACK_ID = "stemhub_split_stems"
SHORTCUT_NAME = "Split stems"

SCOPES: dict[str, str] = {
    "commands": "the /split command and the Split stems message shortcut",
    "chat:write": "the progress message, the results in the thread, ephemeral errors",
    "chat:write.public": "posting results in public channels the app was not invited to",
    "files:read": "downloading the audio file of a message (url_private_download)",
    "files:write": "uploading the stems into the thread (files_upload_v2)",
    "im:history": "seeing audio files people send to the app in a DM (message.im)",
    "im:write": "opening a DM when the channel cannot take the results (conversations.open)",
}
GROUP_SCOPE = ("usergroups:read", "checking membership of the allowed user groups")
BOT_EVENTS = ["file_shared", "message.im"]
"""``message.im`` brings files sent in a DM; ``file_shared`` the ones whose message event
carries no file (Slack Connect, some mobile clients)."""


def scopes_for(settings: SlackSettings) -> dict[str, str]:
    """The scopes this configuration needs, each with why."""
    scopes = dict(SCOPES)
    if not settings.upload_stems:
        scopes.pop("files:write")
    if settings.allowed_user_groups:
        scopes[GROUP_SCOPE[0]] = GROUP_SCOPE[1]
    return scopes


def build_manifest(settings: SlackSettings, *, public_url: str | None) -> dict[str, Any]:
    """A manifest for Socket Mode (app token) or HTTP mode (public request URL).

    HTTP mode needs the hub's public URL: without one this raises ``ValueError`` instead
    of writing a placeholder Slack would send requests to.
    """
    socket_mode = settings.resolved_mode() == "socket"
    if not socket_mode and not public_url:
        raise ValueError(
            "HTTP mode needs the hub's public URL: pass --public-url https://… or set "
            "STEMHUB_PUBLIC_URL (or use --mode socket)."
        )
    request_url = f"{(public_url or '').rstrip('/')}{EVENTS_PATH}"
    command: dict[str, Any] = {
        "command": settings.command,
        "description": "Split a song into stems (vocals, drums, bass, other)",
        "usage_hint": "[link] [vocals|instrumental|both|4|6|vocals,drums] [mp3|wav|flac]",
        "should_escape": False,
    }
    shortcut: dict[str, Any] = {
        "name": SHORTCUT_NAME,
        "type": "message",
        "callback_id": SHORTCUT_CALLBACK_ID,
        "description": "Split the audio file of this message into stems",
    }
    event_subscriptions: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    oauth_config: dict[str, Any] = {"scopes": {"bot": sorted(scopes_for(settings))}}
    if not socket_mode:
        oauth_config["redirect_urls"] = [f"{(public_url or '').rstrip('/')}{REDIRECT_PATH}"]
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        command["url"] = request_url
        event_subscriptions["request_url"] = request_url
        interactivity["request_url"] = request_url
    return {
        "display_information": {
            "name": settings.app_name,
            "description": "Split songs into stems right where you talk about them.",
            "background_color": "#1d1f2b",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": False,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": settings.app_name, "always_online": True},
            "slash_commands": [command],
            "shortcuts": [shortcut],
        },
        "oauth_config": oauth_config,
        "settings": {
            "event_subscriptions": event_subscriptions,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            # a rotating token needs the refresh token only the OAuth install (HTTP) keeps
            "token_rotation_enabled": settings.token_rotation and not socket_mode,
        },
    }


__all__ = [
    "BOT_EVENTS",
    "SCOPES",
    "SHORTCUT_CALLBACK_ID",
    "SHORTCUT_NAME",
    "build_manifest",
    "scopes_for",
]
