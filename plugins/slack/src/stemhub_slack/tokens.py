"""Bot tokens of installed workspaces, refreshed when Slack's token rotation is on.

With token rotation (https://api.slack.com/authentication/rotation) a bot token
(``xoxe.xoxb-…``) expires 12 hours after it was issued; ``oauth.v2.access`` with
``grant_type=refresh_token`` exchanges the installation's refresh token for a new token
and a new refresh token, and Slack revokes the refresh token it was given. slack-bolt
refreshes a token only while it authorizes an incoming request; a delivery that runs
hours later (a long queue, a restart) needs a token too, so every use goes through
:class:`BotTokens`:

- :meth:`BotTokens.token` refreshes a token that expires within ``margin_s`` (as bolt
  does), and keeps using the current one if that refresh fails while it is still valid;
- :class:`RotatingWebClient` answers ``token_expired`` by asking
  :meth:`BotTokens.refreshed` for the token to use, then repeats the call once.

One refresh per installation at a time, across every hub sharing the database: a lock in
this process, and a lease in ``hub.kv`` for the others. A refresher first re-reads the
stored installation; when the token there is no longer the one it saw expire, another
refresher already did the work and its token is used. New tokens are sealed and stored
before anyone uses them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import Bot
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from stemhub_slack.keys import TOKEN_REFRESH_NS
from stemhub_slack.web_errors import RETRYABLE_ERRORS, api_error

if TYPE_CHECKING:
    from stemhub import PluginHub
    from stemhub_slack.installations import HubInstallationStore

log = logging.getLogger(__name__)

REFRESH_MARGIN_S = 120 * 60.0
"""Refresh a token that expires within this (slack-bolt's default: two hours)."""
LEASE_S = 60.0
"""How long one hub may hold an installation's refresh before another may take it (longer
than the Web API client's 30 s timeout)."""
LEASE_POLL_S = 0.1
CACHE_S = 60.0
"""A workspace's installation is read again after this long (another hub may have
refreshed, reinstalled or uninstalled it)."""


class TokenRefused(Exception):
    """Slack would not refresh this installation's token: it must be installed again."""


class BotTokens:
    """The current bot token of each installed workspace, refreshed once when it expires."""

    def __init__(
        self,
        hub: PluginHub,
        installations: HubInstallationStore,
        *,
        client_id: str,
        client_secret: str,
        oauth_client: Callable[[], AsyncWebClient],
        margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        self._installations = installations
        self._leases = hub.kv(TOKEN_REFRESH_NS)
        self._client_id = client_id
        self._client_secret = client_secret
        self._oauth_client = oauth_client
        self.margin_s = margin_s
        self._bots: dict[str, tuple[Bot, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refused: dict[str, SlackApiError] = {}
        self._owner = secrets.token_hex(8)

    async def token(self, team_id: str) -> str | None:
        """The workspace's bot token (None: not installed), refreshed if it expires soon."""
        cached = self._bots.get(team_id)
        fresh_enough = cached is not None and time.monotonic() - cached[1] < CACHE_S
        bot = cached[0] if cached is not None and fresh_enough else await self._load(team_id)
        if bot is None:
            return None
        if self._expiring(bot):
            try:
                bot = await self._refresh(team_id, str(bot.bot_token))
            except (SlackApiError, TokenRefused, aiohttp.ClientError, TimeoutError) as error:
                # still valid for a while: use it, and try again on the next use
                log.warning("slack: could not refresh the token of %s early: %s", team_id, error)
        return str(bot.bot_token)

    async def refreshed(self, team_id: str, stale: str) -> str:
        """The token to use after Slack said ``stale`` expired: refreshed once for everyone.

        Raises the ``oauth.v2.access`` refusal (``invalid_refresh_token`` when Slack no
        longer takes the refresh token: the app must be installed again) or
        :class:`TokenRefused` when the installation has no refresh token.
        """
        bot = await self._refresh(team_id, stale)
        return str(bot.bot_token)

    def _expiring(self, bot: Bot) -> bool:
        expires_at = bot.bot_token_expires_at
        return (
            bool(bot.bot_refresh_token)
            and expires_at is not None
            and expires_at - time.time() < self.margin_s
        )

    async def _load(self, team_id: str) -> Bot | None:
        bot = await self._installations.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or not bot.bot_token:
            self._bots.pop(team_id, None)
            return None
        self._bots[team_id] = (bot, time.monotonic())
        return bot

    async def _stored(self, team_id: str) -> Bot:
        bot = await self._load(team_id)
        if bot is None:
            raise TokenRefused(f"the app is no longer installed in {team_id}")
        return bot

    async def _refresh(self, team_id: str, stale: str) -> Bot:
        """Replace ``stale`` unless someone already did; one refresher at a time."""
        async with self._locks.setdefault(team_id, asyncio.Lock()):
            if stale in self._refused:
                raise self._refused[stale]
            bot = await self._stored(team_id)
            if bot.bot_token != stale:
                return bot
            if not bot.bot_refresh_token:
                raise TokenRefused(f"the token of {team_id} expired and cannot be refreshed")
            while not await self._leases.add(team_id, self._owner, ttl_s=LEASE_S):
                await asyncio.sleep(LEASE_POLL_S)  # another hub is refreshing it
                bot = await self._stored(team_id)
                if bot.bot_token != stale:
                    return bot
            try:
                bot = await self._stored(team_id)  # read again under the lease
                return bot if bot.bot_token != stale else await self._exchange(team_id, bot)
            finally:
                await self._leases.delete(team_id)

    async def _exchange(self, team_id: str, bot: Bot) -> Bot:
        """``oauth.v2.access`` with the refresh token; the new pair is stored at once."""
        stale = str(bot.bot_token)
        # the client credentials as HTTP Basic auth, as oauth.v2.access asks
        credentials = f"{self._client_id}:{self._client_secret}".encode()
        basic = base64.b64encode(credentials).decode()
        try:
            answer = await self._oauth_client().api_call(
                "oauth.v2.access",
                data={"grant_type": "refresh_token", "refresh_token": bot.bot_refresh_token},
                headers={"Authorization": f"Basic {basic}"},
            )
        except SlackApiError as error:
            if error.response.status_code < 500 and api_error(error) not in RETRYABLE_ERRORS:
                self._refused[stale] = error
            raise
        fresh = Bot(**bot.to_dict_for_copying())
        fresh.bot_token = str(answer["access_token"])
        fresh.bot_refresh_token = answer.get("refresh_token") or bot.bot_refresh_token
        fresh.bot_token_expires_at = int(time.time()) + int(answer.get("expires_in") or 0)
        self._bots[team_id] = (fresh, time.monotonic())
        await self._installations.async_save_bot(fresh)
        log.info("slack: the bot token of %s was refreshed", team_id)
        return fresh


class RotatingWebClient(AsyncWebClient):
    """A workspace's Web API client: on ``token_expired`` it gets the refreshed token and
    repeats the call once."""

    def __init__(
        self, *, refresh: Callable[[str], Awaitable[str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._refresh = refresh

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        used = self.token
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            if self._refresh is None or used is None or api_error(error) != "token_expired":
                raise
            try:
                fresh = await self._refresh(used)
            except TokenRefused as refused:
                log.warning("slack: %s", refused)
                raise error from refused
            if fresh != self.token:
                self.token = fresh
            return await super().api_call(api_method, **kwargs)


__all__ = ["REFRESH_MARGIN_S", "BotTokens", "RotatingWebClient", "TokenRefused"]
