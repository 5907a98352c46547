"""Installs in many workspaces: slack-bolt's OAuth stores, kept in the hub's own database.

Each workspace that installs the app through ``/slack/install`` gets one record under
the ``slack:installations`` keys (team id -> the bot's ids, scopes and its token, sealed
with the hub's key like every stored secret); the OAuth ``state`` of an install in
progress lives under ``slack:oauth-state`` for ten minutes and is consumed once. Every hub
sharing the database sees every install; an uninstall (``app_uninstalled``,
``tokens_revoked``) deletes the record.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

if TYPE_CHECKING:
    from stemhub import PluginHub

INSTALLATIONS_NS = "slack:installations"
STATE_NS = "slack:oauth-state"
STATE_TTL_S = 600.0
TOKEN_PURPOSE = "slack-bot-token"  # noqa: S105 - a sealing purpose, not a secret
_SEALED = ("bot_token", "bot_refresh_token")


def _key(enterprise_id: str | None, team_id: str | None) -> str:
    return f"{enterprise_id or '-'}:{team_id or '-'}"


class HubInstallationStore(AsyncInstallationStore):
    """Bot installations per workspace in ``hub.kv``, tokens sealed."""

    def __init__(self, hub: PluginHub) -> None:
        self._hub = hub
        self._kv = hub.kv(INSTALLATIONS_NS)

    @property
    def logger(self) -> Any:
        import logging

        return logging.getLogger(__name__)

    async def async_save(self, installation: Installation) -> None:
        await self.async_save_bot(installation.to_bot())

    async def async_save_bot(self, bot: Bot) -> None:
        record: dict[str, Any] = {
            "app_id": bot.app_id,
            "enterprise_id": bot.enterprise_id,
            "team_id": bot.team_id,
            "bot_id": bot.bot_id,
            "bot_user_id": bot.bot_user_id,
            "bot_scopes": list(bot.bot_scopes or []),
            "is_enterprise_install": bool(bot.is_enterprise_install),
            "installed_at": bot.installed_at,
            "bot_token_expires_at": bot.bot_token_expires_at,
        }
        for name in _SEALED:
            value = getattr(bot, name, None)
            record[name] = self._hub.seal(value, purpose=TOKEN_PURPOSE) if value else None
        await self._kv.put(_key(bot.enterprise_id, bot.team_id), record)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        if is_enterprise_install:
            team_id = None
        record = await self._kv.get(_key(enterprise_id, team_id))
        if not isinstance(record, dict):
            return None
        values = dict(record)
        for name in _SEALED:
            if values.get(name):
                values[name] = self._hub.unseal(values[name], purpose=TOKEN_PURPOSE)
        return Bot(**values)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        bot = await self.async_find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        if bot is None:
            return None
        return Installation(
            app_id=bot.app_id,
            enterprise_id=bot.enterprise_id,
            team_id=bot.team_id,
            bot_token=bot.bot_token,
            bot_id=bot.bot_id,
            bot_user_id=bot.bot_user_id,
            bot_scopes=bot.bot_scopes,
            bot_refresh_token=bot.bot_refresh_token,
            bot_token_expires_at=bot.bot_token_expires_at,
            is_enterprise_install=bot.is_enterprise_install,
            user_id=user_id or "",
            installed_at=bot.installed_at,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._kv.delete(_key(enterprise_id, team_id))

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:
            await self._kv.delete(_key(enterprise_id, team_id))

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._kv.delete(_key(enterprise_id, team_id))


class HubOAuthStateStore(AsyncOAuthStateStore):
    """OAuth ``state`` values in ``hub.kv``: issued for ten minutes, consumed once."""

    def __init__(self, hub: PluginHub) -> None:
        self._kv = hub.kv(STATE_NS)

    @property
    def logger(self) -> Any:
        import logging

        return logging.getLogger(__name__)

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        await self._kv.put(state, True, ttl_s=STATE_TTL_S)
        return state

    async def async_consume(self, state: str) -> bool:
        if not state or await self._kv.get(state) is None:
            return False
        return await self._kv.delete(state)


__all__ = ["INSTALLATIONS_NS", "HubInstallationStore", "HubOAuthStateStore"]
