"""The Slack frontend: a slack-bolt ``AsyncApp`` in Socket Mode or behind the hub's HTTP app.

Slack wants every request acknowledged within 3 seconds, so listeners only parse and
``ack()``; the work (submitting to the hub, posting the status message, opening a modal)
runs in background tasks this frontend owns and cancels on close.

Where things go: a status message is posted when a job is accepted (in the thread of the
message that held the file, or as a new message for ``/split``) and edited as the job
moves; the results go in its thread. What was posted is recorded in ``job.delivery`` (and
the status message under the ``slack:status`` keys) so a restarted hub edits the same
message and never uploads a stem twice. Every message write goes through one
:class:`Pacer` (one write per second per channel, ``Retry-After`` honoured).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message

from stemhub import (
    ConfigError,
    ErrorCode,
    Frontend,
    Job,
    JobRequest,
    Origin,
    StemhubError,
    wait_event,
)
from stemhub_slack.access import AccessPolicy
from stemhub_slack.ask import Ask
from stemhub_slack.delivery import deliver, notify_undelivered
from stemhub_slack.installations import HubInstallationStore
from stemhub_slack.keys import REQUESTS_NS, STATUS_NS
from stemhub_slack.listeners import build_app
from stemhub_slack.messages import error_text, status_text
from stemhub_slack.pacing import Pacer, retry_after_of
from stemhub_slack.progress import ProgressEdits
from stemhub_slack.settings import PLATFORM, SlackSettings
from stemhub_slack.tokens import BotTokens, RotatingWebClient
from stemhub_slack.web_errors import NOT_IN_CHANNEL, RETRYABLE_ERRORS, api_error

if TYPE_CHECKING:
    from stemhub import PluginHub

log = logging.getLogger(__name__)

_TEAM: ContextVar[str | None] = ContextVar("stemhub_slack_team", default=None)
"""The workspace a task serves (many-workspace installs); inherited by the tasks it starts."""

RESPONSE_URL_PURPOSE = "slack-response-url"
STATUS_TTL_S = 14 * 86400.0
ANNOUNCE_WAIT_S = 30.0
REPLAY_WINDOW_S = 6 * 60.0
"""Slack signatures are accepted for 5 minutes: a replay inside that window is dropped."""
TELL_TRIES = 3
"""Tries per route (response_url, ephemeral, DM) when telling someone something final."""
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


class SlackFrontend(Frontend):
    name = PLATFORM

    def __init__(self, hub: PluginHub, settings: SlackSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or SlackSettings()
        self.mode = self.settings.resolved_mode()
        self.multi_workspace = self.settings.multi_workspace()
        token, signing_secret = self.settings.credentials()
        self._token = token
        self._session = _session_if_in_loop()
        self._client = AsyncWebClient(
            token=token or None, base_url=self.settings.api_url, session=self._session
        )
        self._clients: dict[str, AsyncWebClient] = {}
        self._pacers: dict[str | None, Pacer] = {}
        self.installations = HubInstallationStore(hub) if self.multi_workspace else None
        self.tokens = self._bot_tokens()
        self._identity: AsyncSlackResponse | None = None
        self._identity_lock = asyncio.Lock()
        self.access = AccessPolicy(self.settings, lambda: self.client)
        self.progress = ProgressEdits(self._edit_status, self.settings.progress_interval_s)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._announcing: dict[str, asyncio.Event] = {}
        self._status_cache: dict[str, dict[str, Any]] = {}
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.app: AsyncApp = build_app(self, signing_secret=signing_secret)
        self._http = AsyncSlackRequestHandler(self.app)
        self._socket: AsyncSocketModeHandler | None = None

    @property
    def client(self) -> AsyncWebClient:
        """The Web API client of the workspace being served (see :meth:`enter_team`)."""
        team = _TEAM.get()
        if team is None or not self.multi_workspace:
            return self._client
        return self._clients.get(team, self._client)

    @property
    def pacer(self) -> Pacer:
        """The workspace's one pacer of message writes."""
        team = _TEAM.get() if self.multi_workspace else None
        pacer = self._pacers.get(team)
        if pacer is None:
            pacer = self._pacers[team] = Pacer(self.settings.channel_interval_s)
        return pacer

    async def enter_team(self, team_id: str | None) -> None:
        """Serve ``team_id`` from here on in this task (and the tasks it starts).

        One workspace: nothing to do. Many: the workspace's installed bot token, from the
        installation store; a workspace that uninstalled the app is refused for good.
        """
        if not self.multi_workspace or not team_id:
            return
        _TEAM.set(team_id)
        assert self.tokens is not None
        token = await self.tokens.token(team_id)
        if token is None:
            raise StemhubError(
                ErrorCode.DELIVERY_FAILED,
                "The app is no longer installed in this Slack workspace.",
                retryable=False,
                operator_message=f"no installation for team {team_id}",
            )
        client = self._clients.get(team_id)
        if client is None:
            self._clients[team_id] = RotatingWebClient(
                token=token,
                base_url=self.settings.api_url,
                session=self._session,
                refresh=functools.partial(self.tokens.refreshed, team_id),
            )
        elif client.token != token:
            client.token = token

    def _bot_tokens(self) -> BotTokens | None:
        """Many workspaces: their tokens, refreshed with the app's client credentials."""
        if self.installations is None:
            return None
        secret = self.settings.require("client_secret").get_secret_value()
        return BotTokens(
            self.hub,
            self.installations,
            client_id=str(self.settings.client_id),
            client_secret=secret,
            oauth_client=lambda: self._client,
        )

    # serving

    async def run(self) -> None:
        """Socket Mode: hold the WebSocket to Slack. HTTP mode: the route does the work.

        A token Slack refuses ends the frontend with a :class:`ConfigError` naming the
        setting (exit code 3 when Slack is the only frontend asked for); Slack out of
        reach is retried with a one-line warning, never a traceback.
        """
        if not self.multi_workspace:
            await self._until_reachable(self._check_bot_token)
        if self.mode == "http":
            await asyncio.Event().wait()
            return
        app_token = self.settings.require("app_token").get_secret_value()
        await self._until_reachable(lambda: self._check_app_token(app_token))
        self._socket = AsyncSocketModeHandler(self.app, app_token, web_client=self.client)
        await self._socket.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack: connected in Socket Mode")
        try:
            await asyncio.Event().wait()
        finally:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None

    async def _check_bot_token(self) -> None:
        try:
            await self.identity()
        except SlackApiError as error:
            raise ConfigError(
                "STEMHUB_SLACK_BOT_TOKEN",
                f"refused by Slack ({api_error(error)}): use the xoxb- Bot User OAuth Token "
                "of the installed app",
            ) from None

    async def _check_app_token(self, app_token: str) -> None:
        probe = AsyncWebClient(base_url=self.settings.api_url, session=self.client.session)
        try:
            await probe.apps_connections_open(app_token=app_token)
        except SlackApiError as error:
            raise ConfigError(
                "STEMHUB_SLACK_APP_TOKEN",
                f"refused by Slack ({api_error(error)}): use an xapp- app-level token with "
                "the connections:write scope",
            ) from None

    async def _until_reachable(self, check: Any) -> None:
        delay = 1.0
        while True:
            try:
                await check()
                return
            except (SlackClientError, *NETWORK_ERRORS) as error:
                if isinstance(error, SlackApiError):
                    raise
                log.warning(
                    "slack: cannot reach Slack at %s (%s); trying again in %.0f s",
                    self.settings.api_url,
                    type(error).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def handle_http(self, request: Request) -> Response:
        """``POST /slack/events``: size, signature and replays checked before bolt sees it.

        The body is read only up to ``max_request_bytes`` (a longer one is refused with
        413 unread); anything unsigned, stale or undecodable is a plain 401; a signed
        request seen before (same signature within Slack's 5 minutes) is acked and dropped.
        """
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return PlainTextResponse("request too large", status_code=413)
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not timestamp.isdigit() or not signature or self._verifier is None:
            return PlainTextResponse("invalid request", status_code=401)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                return PlainTextResponse("request too large", status_code=413)
        raw = bytes(body)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return PlainTextResponse("invalid request", status_code=401)
        if not self._verifier.is_valid(text, timestamp, signature):
            return PlainTextResponse("invalid request", status_code=401)
        # events (JSON) are deduplicated by event_id; commands and interactions here
        replayable = not raw.startswith(b"{")
        if replayable and not await self.hub.kv(REQUESTS_NS).add(
            signature, True, ttl_s=REPLAY_WINDOW_S
        ):
            log.info("slack: a replayed request was dropped")
            return PlainTextResponse("", status_code=200)

        async def replay() -> Message:
            return {"type": "http.request", "body": raw, "more_body": False}

        return await self._http.handle(Request(request.scope, replay))

    async def handle_oauth(self, request: Request) -> Response:
        """``GET /slack/install`` and ``/slack/oauth_redirect``: bolt's OAuth v2 flow."""
        return await self._http.handle(request)

    async def identity(self) -> AsyncSlackResponse:
        """``auth.test`` of the bot token, asked once (it also proves the token works)."""
        async with self._identity_lock:
            if self._identity is None:
                self._identity = await self.client.auth_test()
            return self._identity

    async def authorize(self, team_id: str | None) -> AuthorizeResult | None:
        """The bot token, for requests from its own workspace only (None refuses others).

        ``auth.test`` is asked once per process; a failure that may pass is tried again
        a few times before bolt answers the person that the app is unavailable.
        """
        for attempt in range(3):
            try:
                identity = await self.identity()
                break
            except (SlackClientError, *NETWORK_ERRORS) as error:
                transient = not isinstance(error, SlackApiError) or (
                    retry_after_of(error) is not None
                    or api_error(error) in RETRYABLE_ERRORS
                    or api_error(error).startswith("http_5")
                )
                if not transient or attempt == 2:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
        if team_id and team_id != identity.get("team_id"):
            log.warning(
                "slack: a request from workspace %s refused (this app serves %s)",
                team_id,
                identity.get("team_id"),
            )
            return None
        return AuthorizeResult.from_auth_test_response(
            auth_test_response=identity, bot_token=self._token
        )

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` after the ack; errors are logged, the task is cancelled on close."""
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except (StemhubError, SlackClientError, *NETWORK_ERRORS):
            log.exception("slack: background work failed")

    def http_session(self) -> aiohttp.ClientSession:
        """The connection pool for uploads (the Web API client's, made on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._client.session = self._session
        return self._session

    async def close(self) -> None:
        await self.progress.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self._session is not None:
            await self._session.close()

    # asking the hub

    async def launch(self, ask: Ask) -> Job | None:
        """Submit ``ask`` to the hub, then post its status message; refusals go ephemeral."""
        await self.enter_team(ask.team_id)
        context: dict[str, Any] = {"thread_ts": ask.thread_ts}
        if ask.response_url:
            context["response_url"] = self.hub.seal(ask.response_url, purpose=RESPONSE_URL_PURPOSE)
        if ask.slack_file is not None:
            context["file_id"] = ask.slack_file.id
            context["file_url"] = ask.slack_file.url
        request = JobRequest(
            source=ask.source,
            stems=ask.stems,
            output_format=ask.output_format,
            origin=Origin(
                platform=self.name,
                user_id=ask.user_id,
                channel_id=ask.channel_id,
                guild_id=ask.team_id,
                thread_id=ask.thread_ts,
                context=context,
            ),
        )
        try:
            job = await self.hub.submit(request)
        except StemhubError as error:
            text = error_text(
                error.code,
                error.message,
                retry_after=error.retry_after,
                details=error.details,
                slack_file=ask.slack_file is not None,
            )
            await self.tell_surely(ask.user_id, ask.channel_id, text, response_url=ask.response_url)
            return None
        # registered before any await, so deliver() of a fast job waits for the status post
        gate = self._announcing.setdefault(job.id, asyncio.Event())
        try:
            await self._announce(job, ask.response_url)
        finally:
            gate.set()
            self._announcing.pop(job.id, None)
        return job

    async def _announce(self, job: Job, response_url: str | None) -> None:
        try:
            status = await self.post_status(job, status_text(job), response_url=response_url)
        except (SlackClientError, *NETWORK_ERRORS) as error:
            log.warning("slack: could not post the status of job %s: %s", job.id, error)
            return
        await self.remember_status(job.id, status)

    # writing messages (paced)

    async def post_message(self, channel: str, **kwargs: Any) -> AsyncSlackResponse:
        return await self.pacer.send(
            "chat.postMessage",
            channel,
            lambda: self.client.chat_postMessage(channel=channel, **kwargs),
        )

    async def update_message(self, channel: str, ts: str, **kwargs: Any) -> AsyncSlackResponse:
        return await self.pacer.send(
            "chat.update",
            channel,
            lambda: self.client.chat_update(channel=channel, ts=ts, **kwargs),
        )

    # the status message

    async def post_status(
        self, job: Job, text: str, *, response_url: str | None = None
    ) -> dict[str, Any]:
        """Post the status message where the job came from, or in a DM if it cannot go there."""
        origin = job.origin
        thread_ts = origin.context.get("thread_ts")
        channel = origin.channel_id or ""
        try:
            posted = await self.post_message(
                channel, thread_ts=thread_ts, text=text, unfurl_links=False
            )
        except SlackApiError as error:
            if api_error(error) not in NOT_IN_CHANNEL or not origin.user_id:
                raise
            channel = await self.open_dm(origin.user_id)
            thread_ts = None
            posted = await self.post_message(channel, text=text)
            await self.tell(
                origin.user_id,
                origin.channel_id or channel,
                ":mailbox_with_mail: I can't post in that channel, so your stems come to "
                "this DM. Invite me with `/invite @" + self.settings.app_name + "` to get them "
                "in the channel next time.",
                response_url=response_url or self.response_url_of(job),
                thread_ts=None,
                fallback_dm=False,
            )
        ts = str(posted["ts"])
        return {
            "channel": str(posted.get("channel") or channel),
            "ts": ts,
            "thread_ts": thread_ts or ts,
        }

    async def remember_status(self, job_id: str, status: dict[str, Any]) -> None:
        self._status_cache[job_id] = status
        await self.hub.kv(STATUS_NS).put(job_id, status, ttl_s=STATUS_TTL_S)

    async def status_of(self, job_id: str) -> dict[str, Any] | None:
        cached = self._status_cache.get(job_id)
        if cached is None:
            stored = await self.hub.kv(STATUS_NS).get(job_id)
            if isinstance(stored, dict):
                cached = self._status_cache[job_id] = stored
        return cached

    def forget_status(self, job_id: str) -> None:
        self._status_cache.pop(job_id, None)
        self.progress.forget(job_id)

    async def _edit_status(self, status: dict[str, Any], text: str) -> None:
        await self.update_message(status["channel"], status["ts"], text=text)

    async def show_progress(self, job: Job) -> None:
        """Observer of the hub's job events: schedule a (coalesced) status edit."""
        if job.origin.platform != self.name or job.finished or job.id in self._announcing:
            return
        await self.enter_team(job.origin.guild_id)
        status = await self.status_of(job.id)
        if status is not None:
            self.progress.update(job.id, status, status_text(job))

    async def wait_for_announcement(self, job_id: str) -> None:
        gate = self._announcing.get(job_id)
        if gate is not None:
            await wait_event(gate, ANNOUNCE_WAIT_S)

    # talking to people

    def response_url_of(self, job: Job) -> str | None:
        sealed = job.origin.context.get("response_url")
        if not isinstance(sealed, str):
            return None
        try:
            return self.hub.unseal(sealed, purpose=RESPONSE_URL_PURPOSE)
        except StemhubError:
            return None

    async def open_dm(self, user_id: str) -> str:
        opened = await self.client.conversations_open(users=user_id)
        channel = opened.get("channel") or {}
        return str(channel["id"])

    async def tell(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        *,
        response_url: str | None,
        thread_ts: str | None,
        fallback_dm: bool = True,
    ) -> None:
        """An ephemeral message for one person: response_url, else postEphemeral, else a DM."""
        if response_url and await self._respond(response_url, text):
            return
        try:
            await self.client.chat_postEphemeral(
                channel=channel_id, user=user_id, text=text, thread_ts=thread_ts
            )
            return
        except SlackApiError as error:
            if not fallback_dm:
                log.info("slack: could not tell %s: %s", user_id, api_error(error))
                return
        dm = await self.open_dm(user_id)
        await self.post_message(dm, text=text)

    async def _respond(self, response_url: str, text: str) -> bool:
        hook = AsyncWebhookClient(response_url, session=self._session)
        with contextlib.suppress(*NETWORK_ERRORS):
            sent = await hook.send(text=text, response_type="ephemeral", replace_original=False)
            return sent.status_code == 200
        return False

    async def tell_surely(
        self, user_id: str, channel_id: str, text: str, *, response_url: str | None
    ) -> bool:
        """Plain text that must reach the person: each private route, a few tries each.

        In order: the request's response_url (only they see it), an ephemeral message in
        the channel, their DM with the app. Returns whether one of them took it.
        """
        routes: list[Any] = []
        if response_url:
            routes.append(lambda: self._respond_or_raise(response_url, text))
        if channel_id and not channel_id.startswith("D"):
            routes.append(
                lambda: self.client.chat_postEphemeral(channel=channel_id, user=user_id, text=text)
            )
        routes.append(lambda: self._dm(user_id, text))
        for route in routes:
            for attempt in range(TELL_TRIES):
                try:
                    await route()
                    return True
                except SlackApiError as error:
                    wait = retry_after_of(error)
                    if (
                        wait is None
                        and api_error(error) not in RETRYABLE_ERRORS
                        and not (api_error(error).startswith("http_5"))
                    ):
                        break
                    await asyncio.sleep(min(wait if wait is not None else 0.2 * 2**attempt, 5.0))
                except (SlackClientError, *NETWORK_ERRORS):
                    await asyncio.sleep(0.2 * 2**attempt)
        return False

    async def _respond_or_raise(self, response_url: str, text: str) -> None:
        if not await self._respond(response_url, text):
            raise SlackClientError("the response_url did not take the message")

    async def _dm(self, user_id: str, text: str) -> None:
        dm = await self.open_dm(user_id)
        await self.post_message(dm, text=text)

    # the hub's side

    async def source_headers(self, job: Job, url: str) -> dict[str, str]:
        """The bot token, for a private file Slack itself handed us, on Slack's file host only."""
        file_url = job.origin.context.get("file_url")
        if file_url and url == file_url and self.settings.is_file_host(url):
            await self.enter_team(job.origin.guild_id)
            return {"Authorization": f"Bearer {self.client.token}"}
        return {}

    async def deliver(self, job: Job) -> None:
        await self.enter_team(job.origin.guild_id)
        await deliver(self, job)

    async def notify_undelivered(self, job: Job, error: StemhubError) -> None:
        await self.enter_team(job.origin.guild_id)
        await notify_undelivered(self, job, error)


def _session_if_in_loop() -> aiohttp.ClientSession | None:
    """One connection pool for all Web API calls, when built inside the running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return aiohttp.ClientSession()


__all__ = ["SlackFrontend"]
