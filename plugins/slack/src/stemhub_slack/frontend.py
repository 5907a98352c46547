"""The Slack frontend: a slack-bolt ``AsyncApp`` in Socket Mode or behind the hub's HTTP app.

Slack wants every request acknowledged within 3 seconds, so listeners only parse and
``ack()``; the work (submitting to the hub, posting the status message, opening a modal)
runs in background tasks this frontend owns and cancels on close.

Where things go: a status message is posted when a job is accepted (in the thread of the
message that held the file, or as a new message for ``/split``) and edited as the job
moves; the results go in its thread. What was posted is recorded in ``job.delivery`` (and
the status message under the store's ``slack:status`` keys) so a restarted hub edits the
same message and never uploads a stem twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from stemhub.errors import ErrorCode, StemhubError
from stemhub.frontend import Frontend
from stemhub.models import Job, JobRequest, Origin
from stemhub_slack.access import AccessPolicy
from stemhub_slack.ask import Ask
from stemhub_slack.delivery import deliver
from stemhub_slack.keys import STATUS_NS
from stemhub_slack.listeners import build_app
from stemhub_slack.messages import error_text, status_text
from stemhub_slack.progress import ProgressEdits
from stemhub_slack.settings import PLATFORM, SlackSettings
from stemhub_slack.web_errors import NOT_IN_CHANNEL, api_error

if TYPE_CHECKING:
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

RESPONSE_URL_PURPOSE = "slack-response-url"
STATUS_TTL_S = 14 * 86400.0
ANNOUNCE_WAIT_S = 30.0


class SlackFrontend(Frontend):
    name = PLATFORM

    def __init__(self, hub: Hub, settings: SlackSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or SlackSettings()
        self.mode = self.settings.resolved_mode()
        token: str = self.settings.require("bot_token").get_secret_value()
        if self.mode == "socket":
            self.settings.require("app_token")
            signing_secret = ""
        else:
            signing_secret = self.settings.require("signing_secret").get_secret_value()
        self._token = token
        self._session = _session_if_in_loop()
        self.client = AsyncWebClient(
            token=token, base_url=self.settings.api_url, session=self._session
        )
        self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
        self._identity: AsyncSlackResponse | None = None
        self._identity_lock = asyncio.Lock()
        self.access = AccessPolicy(self.settings, self.client)
        self.progress = ProgressEdits(self._edit_status, self.settings.progress_interval_s)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._announcing: dict[str, asyncio.Event] = {}
        self._status_cache: dict[str, dict[str, Any]] = {}
        self.app: AsyncApp = build_app(self, signing_secret=signing_secret)
        self._http = AsyncSlackRequestHandler(self.app)
        self._socket: AsyncSocketModeHandler | None = None

    # serving

    async def run(self) -> None:
        """Socket Mode: hold the WebSocket to Slack. HTTP mode: the route does the work."""
        try:
            await self.identity()
        except SlackApiError as error:
            raise StemhubError(
                ErrorCode.CONFIG_MISSING,
                f"Slack refused the bot token ({api_error(error)}).",
                operator_message="Check SLACK_BOT_TOKEN (the xoxb- token of the installed app).",
            ) from None
        if self.mode == "http":
            await asyncio.Event().wait()
            return
        app_token = self.settings.require("app_token").get_secret_value()
        self._socket = AsyncSocketModeHandler(self.app, app_token, web_client=self.client)
        await self._socket.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack: connected in Socket Mode")
        try:
            await asyncio.Event().wait()
        finally:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None

    async def handle_http(self, request: Request) -> Response:
        """``POST /slack/events``: commands, interactivity and events, verified by bolt."""
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        if not timestamp.isdigit() or not request.headers.get("x-slack-signature"):
            return PlainTextResponse("invalid request", status_code=401)
        return await self._http.handle(request)

    async def identity(self) -> AsyncSlackResponse:
        """``auth.test`` of the bot token, asked once (it also proves the token works)."""
        async with self._identity_lock:
            if self._identity is None:
                self._identity = await self.client.auth_test()
            return self._identity

    async def authorize(self) -> AuthorizeResult:
        return AuthorizeResult.from_auth_test_response(
            auth_test_response=await self.identity(), bot_token=self._token
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
        except (StemhubError, SlackClientError, aiohttp.ClientError, TimeoutError):
            log.exception("slack: background work failed")

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
        context: dict[str, Any] = {"thread_ts": ask.thread_ts}
        if ask.response_url:
            context["response_url"] = self.hub.sealer.seal(
                ask.response_url, purpose=RESPONSE_URL_PURPOSE
            )
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
            await self.tell(
                ask.user_id, ask.channel_id, text, response_url=ask.response_url, thread_ts=None
            )
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
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as error:
            log.warning("slack: could not post the status of job %s: %s", job.id, error)
            return
        await self.remember_status(job.id, status)

    # the status message

    async def post_status(
        self, job: Job, text: str, *, response_url: str | None = None
    ) -> dict[str, Any]:
        """Post the status message where the job came from, or in a DM if it cannot go there."""
        origin = job.origin
        thread_ts = origin.context.get("thread_ts")
        channel = origin.channel_id or ""
        try:
            posted = await self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=text, unfurl_links=False
            )
        except SlackApiError as error:
            if api_error(error) not in NOT_IN_CHANNEL or not origin.user_id:
                raise
            channel = await self.open_dm(origin.user_id)
            thread_ts = None
            posted = await self.client.chat_postMessage(channel=channel, text=text)
            await self.tell(
                origin.user_id,
                origin.channel_id or channel,
                ":mailbox_with_mail: I'm not a member of that channel, so your stems come to "
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
        await self.hub.store.kv_put(STATUS_NS, job_id, status, ttl_s=STATUS_TTL_S)

    async def status_of(self, job_id: str) -> dict[str, Any] | None:
        cached = self._status_cache.get(job_id)
        if cached is None:
            stored = await self.hub.store.kv_get(STATUS_NS, job_id)
            if isinstance(stored, dict):
                cached = self._status_cache[job_id] = stored
        return cached

    def forget_status(self, job_id: str) -> None:
        self._status_cache.pop(job_id, None)
        self.progress.forget(job_id)

    async def _edit_status(self, status: dict[str, Any], text: str) -> None:
        await self.client.chat_update(channel=status["channel"], ts=status["ts"], text=text)

    async def show_progress(self, job: Job) -> None:
        """Observer of the hub's job events: schedule a (coalesced) status edit."""
        if job.origin.platform != self.name or job.finished or job.id in self._announcing:
            return
        status = await self.status_of(job.id)
        if status is not None:
            self.progress.update(job.id, status, status_text(job))

    async def wait_for_announcement(self, job_id: str) -> None:
        gate = self._announcing.get(job_id)
        if gate is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate.wait(), ANNOUNCE_WAIT_S)

    # talking to people

    def response_url_of(self, job: Job) -> str | None:
        sealed = job.origin.context.get("response_url")
        if not isinstance(sealed, str):
            return None
        try:
            return self.hub.sealer.open(sealed, purpose=RESPONSE_URL_PURPOSE)
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
        if response_url:
            hook = AsyncWebhookClient(response_url, session=self._session)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                sent = await hook.send(text=text, response_type="ephemeral", replace_original=False)
                if sent.status_code == 200:
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
        await self.client.chat_postMessage(channel=dm, text=text)

    # the hub's side

    async def source_headers(self, job: Job, url: str) -> dict[str, str]:
        """The bot token, for a private file Slack itself handed us, on Slack's file host only."""
        file_url = job.origin.context.get("file_url")
        if file_url and url == file_url and self.settings.is_file_host(url):
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    async def deliver(self, job: Job) -> None:
        await deliver(self, job)


def _session_if_in_loop() -> aiohttp.ClientSession | None:
    """One connection pool for all Web API calls, when built inside the running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return aiohttp.ClientSession()


__all__ = ["SlackFrontend"]
