"""The bolt app: one listener per way in, each acking at once and working afterwards.

``process_before_response=True`` makes bolt answer Slack as soon as a listener returns,
without polling for ``ack()``; listeners therefore only parse, ack, and hand the rest to
:meth:`SlackFrontend.spawn`. Events are deduplicated by ``event_id`` in the hub's store
(first writer wins), so a retry (``X-Slack-Retry-Num``) or a second hub instance never
handles an event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from stemhub import Origin, RequestRejected, StemhubError, StemSet
from stemhub_slack.access import is_dm
from stemhub_slack.arguments import parse_split_text, parse_stems
from stemhub_slack.ask import Ask, SlackFile, audio_files
from stemhub_slack.installations import HubOAuthStateStore
from stemhub_slack.keys import EVENTS_NS, FILES_NS
from stemhub_slack.manifest import SHORTCUT_CALLBACK_ID, scopes_for
from stemhub_slack.messages import (
    ANOTHER_SET_ACTION,
    FRESH_LINKS_ACTION,
    MODAL_CALLBACK_ID,
    PICK_FILE_ACTION,
    RESULT_PAGE_ACTION,
    STEMS_BLOCK,
    STEMS_INPUT,
    URL_BLOCK,
    URL_INPUT,
    error_text,
    file_choice,
    links_text,
    split_modal,
)
from stemhub_slack.settings import INSTALL_PATH, REDIRECT_PATH

if TYPE_CHECKING:
    from stemhub_slack.frontend import SlackFrontend

log = logging.getLogger(__name__)

NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)

NO_AUDIO = (
    ":mag: I found no audio file in that message. Use *Split stems* on a message with an "
    "MP3, WAV, FLAC or similar file, or `/split <link>`."
)
DM_NOT_AUDIO = ":musical_note: Send me an audio file (MP3, WAV, FLAC, …) and I'll split it."
NO_MODAL = (
    ":warning: Slack did not let me open the form in time. Type `/split <link to the song>` "
    "instead, or try `/split` again."
)
FILE_UNREADABLE = (
    ":warning: Slack would not show me that file. Share it again, or send it to me in a DM."
)


def oauth_settings(frontend: SlackFrontend) -> AsyncOAuthSettings:
    """Slack's OAuth v2 install flow on the hub's server, installs kept in its database."""
    settings = frontend.settings
    assert frontend.installations is not None and settings.client_secret is not None
    return AsyncOAuthSettings(
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        scopes=sorted(scopes_for(settings)),
        installation_store=frontend.installations,
        installation_store_bot_only=True,
        state_store=HubOAuthStateStore(frontend.hub),
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        redirect_uri=f"{frontend.hub.public_url}{REDIRECT_PATH}"
        if frontend.hub.public_url
        else None,
        authorization_url=settings.oauth_authorize_url,
    )


class InstalledTeamAuthorize(AsyncAuthorize):
    """bolt's authorize for many workspaces, with the token :class:`BotTokens` keeps.

    bolt's own (``AsyncInstallationStoreAuthorize``) refreshes a rotating token itself,
    unlocked: a request and a delivery could then spend one refresh token twice. Here a
    request gets its workspace's token the way deliveries do (refreshed once, for all),
    then ``auth.test`` proves it, as bolt's does.
    """

    def __init__(self, frontend: SlackFrontend) -> None:
        self._frontend = frontend

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        if not team_id:
            return None
        try:
            await self._frontend.enter_team(team_id)
            client = self._frontend.client
            identity = await client.auth_test()
        except (StemhubError, SlackApiError) as error:
            log.info("slack: a request from %s is not served: %s", team_id, error)
            return None
        return AuthorizeResult.from_auth_test_response(
            auth_test_response=identity, bot_token=client.token
        )


def build_app(frontend: SlackFrontend, *, signing_secret: str) -> AsyncApp:
    settings = frontend.settings
    hub = frontend.hub

    async def authorize(team_id: str | None) -> AuthorizeResult | None:
        return await frontend.authorize(team_id)

    # bolt's own client carries no token: the one from authorize() is set per request
    client = AsyncWebClient(base_url=settings.api_url, session=frontend.client.session)
    logger = logging.getLogger("stemhub_slack.bolt")
    if frontend.installations is not None:
        app = AsyncApp(
            name="stemhub",
            client=client,
            signing_secret=signing_secret,
            authorize=cast("Any", InstalledTeamAuthorize(frontend)),  # an AsyncAuthorize is kept
            oauth_settings=oauth_settings(frontend),
            process_before_response=True,
            logger=logger,
        )
        app.enable_token_revocation_listeners()
    else:
        app = AsyncApp(
            name="stemhub",
            client=client,
            signing_secret=signing_secret,
            authorize=cast("Any", authorize),  # None refuses a request (bolt's documented way)
            process_before_response=True,
            logger=logger,
        )

    async def serve_its_team(context: AsyncBoltContext, next: Any) -> BoltResponse | None:
        """Everything this request starts serves its own workspace, with its own token."""
        try:
            await frontend.enter_team(context.team_id)
        except StemhubError:
            return BoltResponse(status=200, body="")
        await next()
        return None

    app.use(serve_its_team)

    async def once_per_event(
        body: dict[str, Any], request: AsyncBoltRequest, next: Any
    ) -> BoltResponse | None:
        """Drop events another delivery of which was already taken (retries, other hubs)."""
        event_id = body.get("event_id")
        if body.get("type") == "event_callback" and event_id:
            retries = request.headers.get("x-slack-retry-num") or []
            retry = retries[0] if retries else None
            first = await hub.kv(EVENTS_NS).add(
                str(event_id), {"retry": retry}, ttl_s=settings.event_dedupe_s
            )
            if not first:
                log.info("slack: event %s seen before (retry %s); ignored", event_id, retry)
                return BoltResponse(status=200, body="")
        await next()
        return None

    app.use(once_per_event)

    async def split_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        try:
            args = parse_split_text(
                command.get("text") or "",
                default_stems=settings.default_stems,
                default_format=settings.default_format,
                is_file_host=settings.is_file_host,
            )
        except StemhubError as error:
            await ack(text=error_text(error.code, error.message))
            return
        await ack()
        if args is None:
            metadata = {
                "channel": command.get("channel_id"),
                "response_url": command.get("response_url"),
            }
            view = split_modal(metadata=metadata, stems=settings.default_stems, ask_url=True)
            frontend.spawn(
                _open_modal(
                    frontend,
                    command["trigger_id"],
                    view,
                    user=str(command.get("user_id") or ""),
                    channel=str(command.get("channel_id") or ""),
                    response_url=command.get("response_url"),
                )
            )
            return
        ask = Ask(
            team_id=command.get("team_id"),
            user_id=command["user_id"],
            channel_id=command["channel_id"],
            source=args.source(),
            stems=args.stems,
            output_format=args.output_format,
            response_url=command.get("response_url"),
        )
        frontend.spawn(frontend.launch(ask))

    app.command(settings.command)(split_command)

    async def split_shortcut(ack: AsyncAck, shortcut: dict[str, Any]) -> None:
        await ack()
        message = shortcut.get("message") or {}
        user = (shortcut.get("user") or {}).get("id", "")
        channel = (shortcut.get("channel") or {}).get("id", "")
        frontend.spawn(
            _split_message_files(
                frontend,
                list(message.get("files") or []),
                team=(shortcut.get("team") or {}).get("id"),
                user=user,
                channel=channel,
                thread_ts=message.get("thread_ts")
                or message.get("ts")
                or shortcut.get("message_ts"),
                response_url=shortcut.get("response_url"),
            )
        )

    app.shortcut(SHORTCUT_CALLBACK_ID)(split_shortcut)

    async def split_modal_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        values = (view.get("state") or {}).get("values") or {}
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            metadata = {}
        selected = ((values.get(STEMS_BLOCK) or {}).get(STEMS_INPUT) or {}).get("selected_option")
        stems = parse_stems(str((selected or {}).get("value") or "")) or settings.default_stems
        user = (body.get("user") or {}).get("id", "")
        team = (body.get("team") or {}).get("id")
        from_job = metadata.get("job")
        if from_job:
            await ack()
            frontend.spawn(_split_again(frontend, str(from_job), user, team, stems, metadata))
            return
        url = ((values.get(URL_BLOCK) or {}).get(URL_INPUT) or {}).get("value") or ""
        try:
            args = parse_split_text(
                url,
                default_stems=settings.default_stems,
                default_format=settings.default_format,
                is_file_host=settings.is_file_host,
            )
        except StemhubError as error:
            await ack(response_action="errors", errors={URL_BLOCK: error.message[:150]})
            return
        if args is None:
            await ack(response_action="errors", errors={URL_BLOCK: "Paste a link to the song."})
            return
        await ack()
        ask = Ask(
            team_id=team,
            user_id=user,
            channel_id=str(metadata.get("channel") or ""),
            source=args.source(),
            stems=stems,
            output_format=args.output_format,
            response_url=metadata.get("response_url"),
        )
        frontend.spawn(frontend.launch(ask))

    app.view(MODAL_CALLBACK_ID)(split_modal_submitted)

    async def fresh_links(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        frontend.spawn(_send_fresh_links(frontend, str(action.get("value") or ""), body))

    app.action(FRESH_LINKS_ACTION)(fresh_links)

    async def another_stem_set(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        thread = container.get("thread_ts") or container.get("message_ts")
        frontend.spawn(
            _open_split_again(
                frontend,
                str(action.get("value") or ""),
                body["trigger_id"],
                {
                    "channel": channel,
                    "thread_ts": thread,
                    "response_url": body.get("response_url"),
                    "user": (body.get("user") or {}).get("id"),
                },
            )
        )

    app.action(ANOTHER_SET_ACTION)(another_stem_set)

    async def result_page_opened(ack: AsyncAck) -> None:
        # a link button: Slack opens the page and still tells the app; nothing to do
        await ack()

    app.action(RESULT_PAGE_ACTION)(result_page_opened)

    async def pick_file(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        try:
            picked = json.loads(str(action.get("value") or "{}"))
        except ValueError:
            return
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id") or ""
        frontend.spawn(
            _split_message_files(
                frontend,
                [{"id": str(picked.get("file") or ""), "file_access": "check_file_info"}],
                team=(body.get("team") or {}).get("id"),
                user=(body.get("user") or {}).get("id", ""),
                channel=str(channel),
                thread_ts=picked.get("thread_ts"),
                response_url=body.get("response_url"),
            )
        )

    app.action(re.compile(f"^{PICK_FILE_ACTION}_[0-9]+$"))(pick_file)

    async def file_in_dm(ack: AsyncAck, body: dict[str, Any], event: dict[str, Any]) -> None:
        await ack()
        if event.get("channel_type") != "im" or event.get("bot_id"):
            return
        for item in event.get("files") or []:
            file = SlackFile.from_payload(item)
            frontend.spawn(
                _split_dm_file(
                    frontend,
                    file,
                    item,
                    team=body.get("team_id"),
                    user=str(event.get("user") or ""),
                    channel=str(event.get("channel") or ""),
                    thread_ts=event.get("thread_ts") or event.get("ts"),
                )
            )

    app.event({"type": "message", "subtype": "file_share"})(file_in_dm)

    async def file_shared(ack: AsyncAck, body: dict[str, Any], event: dict[str, Any]) -> None:
        await ack()
        channel = str(event.get("channel_id") or "")
        if not is_dm(channel):
            return
        file_id = str(event.get("file_id") or (event.get("file") or {}).get("id") or "")
        frontend.spawn(
            _split_shared_file(
                frontend,
                file_id,
                team=body.get("team_id"),
                user=str(event.get("user_id") or ""),
                channel=channel,
            )
        )

    app.event("file_shared")(file_shared)

    async def other_messages(ack: AsyncAck) -> None:
        await ack()

    app.event("message")(other_messages)
    return app


async def _open_modal(
    frontend: SlackFrontend,
    trigger_id: str,
    view: dict[str, Any],
    *,
    user: str,
    channel: str,
    response_url: str | None,
) -> None:
    """Open the /split modal; if Slack refuses (the trigger expired), say what to type."""
    try:
        await frontend.client.views_open(trigger_id=trigger_id, view=view)
    except (SlackClientError, *NETWORK_ERRORS) as error:
        log.info("slack: views.open failed: %s", error)
        await frontend.tell_surely(user, channel, NO_MODAL, response_url=response_url)


async def _full_file(frontend: SlackFrontend, item: dict[str, Any]) -> dict[str, Any] | None:
    """A file as Slack describes it; Slack Connect stubs (``file_access: check_file_info``)
    and files without URLs are looked up with files.info (a few tries)."""
    if SlackFile.from_payload(item) is not None and item.get("file_access") != "check_file_info":
        return item
    if not item.get("id"):
        return None
    for attempt in range(3):
        try:
            info = await frontend.client.files_info(file=str(item["id"]))
            found: dict[str, Any] = info.get("file") or {}
            return found
        except SlackApiError as error:
            if (
                error.response.status_code != 429
                and isinstance(error.response.data, dict)
                and (
                    error.response.data.get("error")
                    in ("file_not_found", "file_deleted", "missing_scope")
                )
            ):
                return None
        except (SlackClientError, *NETWORK_ERRORS):
            pass
        await asyncio.sleep(0.5 * 2**attempt)
    return None


async def _split_message_files(
    frontend: SlackFrontend,
    items: list[dict[str, Any]],
    *,
    team: str | None,
    user: str,
    channel: str,
    thread_ts: str | None,
    response_url: str | None,
) -> None:
    """The shortcut on a message: split its one audio file, or ask which one."""
    resolved = [await _full_file(frontend, item) for item in items]
    if items and all(found is None for found in resolved):
        await frontend.tell_surely(user, channel, FILE_UNREADABLE, response_url=response_url)
        return
    files = audio_files([found for found in resolved if found is not None])
    if not files:
        await frontend.tell_surely(user, channel, NO_AUDIO, response_url=response_url)
        return
    if len(files) > 1:
        text, blocks = file_choice([(f.id, f.name) for f in files], thread_ts=thread_ts)
        if response_url:
            hook = AsyncWebhookClient(response_url, session=frontend.client.session)
            with contextlib.suppress(*NETWORK_ERRORS):
                sent = await hook.send(text=text, blocks=blocks, response_type="ephemeral")
                if sent.status_code == 200:
                    return
        with contextlib.suppress(SlackClientError, *NETWORK_ERRORS):
            await frontend.client.chat_postEphemeral(
                channel=channel, user=user, text=text, blocks=blocks
            )
            return
        await frontend.tell_surely(user, channel, text, response_url=None)
        return
    settings = frontend.settings
    await frontend.launch(
        Ask(
            team_id=team,
            user_id=user,
            channel_id=channel,
            source=files[0].source(),
            stems=settings.default_stems,
            output_format=settings.default_format,
            thread_ts=thread_ts,
            response_url=response_url,
            slack_file=files[0],
        )
    )


async def _split_dm_file(
    frontend: SlackFrontend,
    file: SlackFile | None,
    item: dict[str, Any],
    *,
    team: str | None,
    user: str,
    channel: str,
    thread_ts: str | None,
) -> None:
    if file is None or item.get("file_access") == "check_file_info":
        found = await _full_file(frontend, item)
        file = SlackFile.from_payload(found) if found is not None else None
    files = frontend.hub.kv(FILES_NS)
    if file is None or not file.is_audio:
        if not await files.add(
            f"{file.id if file else item.get('id')}:not-audio", True, ttl_s=3600
        ):
            return
        text = DM_NOT_AUDIO if file is not None else FILE_UNREADABLE
        await frontend.tell_surely(user, channel, text, response_url=None)
        return
    if not await files.add(file.id, {"channel": channel}, ttl_s=86400):
        return
    settings = frontend.settings
    await frontend.launch(
        Ask(
            team_id=team,
            user_id=user,
            channel_id=channel,
            source=file.source(),
            stems=settings.default_stems,
            output_format=settings.default_format,
            thread_ts=thread_ts,
            slack_file=file,
        )
    )


async def _split_shared_file(
    frontend: SlackFrontend, file_id: str, *, team: str | None, user: str, channel: str
) -> None:
    raw = await _full_file(frontend, {"id": file_id, "file_access": "check_file_info"}) or {
        "id": file_id
    }
    shares = raw.get("shares") or {}
    where = (shares.get("private") or {}).get(channel) or (shares.get("public") or {}).get(channel)
    shared = (where or [{}])[0]
    # a file shared in a thread reply: the thread is its parent's (https://api.slack.com/types/file)
    thread_ts = shared.get("thread_ts") or shared.get("ts")
    file = SlackFile.from_payload(raw)
    await _split_dm_file(
        frontend,
        file,
        raw,
        team=team,
        user=user or str(raw.get("user") or ""),
        channel=channel,
        thread_ts=thread_ts,
    )


async def _send_fresh_links(frontend: SlackFrontend, job_id: str, body: dict[str, Any]) -> None:
    user = (body.get("user") or {}).get("id", "")
    channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get(
        "id", ""
    )
    team = (body.get("team") or {}).get("id")
    job = await frontend.hub.get_job(job_id) if job_id.isalnum() else None
    if (
        job is None
        or job.origin.platform != frontend.name
        or job.origin.guild_id not in (None, team)
    ):
        text = ":warning: I no longer have that job; split the song again."
    else:
        try:
            await frontend.access.check(
                Origin(platform=frontend.name, user_id=user, channel_id=channel, guild_id=team)
            )
            try:
                job = await frontend.hub.refresh_links(job.id)
            except StemhubError as error:
                log.info("slack: could not refresh links of %s: %s", job_id, error.code.value)
            text = links_text(job, frontend.hub.links(job))
        except RequestRejected as refused:
            text = error_text(refused.code, refused.message)
    await frontend.tell_surely(user, channel, text, response_url=body.get("response_url"))


async def _open_split_again(
    frontend: SlackFrontend, job_id: str, trigger_id: str, metadata: dict[str, Any]
) -> None:
    job = await frontend.hub.get_job(job_id) if job_id.isalnum() else None
    if job is None or job.origin.platform != frontend.name:
        return
    current = job.request.stem_set
    others = [s for s in StemSet if s is not current]
    view = split_modal(
        metadata={**metadata, "job": job.id},
        stems=others[0] if current is StemSet.FOUR_STEMS else StemSet.FOUR_STEMS,
        ask_url=False,
        source_name=job.request.source.display_name,
    )
    await _open_modal(
        frontend,
        trigger_id,
        view,
        user=str(metadata.get("user") or job.origin.user_id or ""),
        channel=str(metadata.get("channel") or ""),
        response_url=metadata.get("response_url"),
    )


async def _split_again(
    frontend: SlackFrontend,
    job_id: str,
    user: str,
    team: str | None,
    stems: StemSet | list[str],
    metadata: dict[str, Any],
) -> None:
    """Split the source of an earlier job again, into another stem set, in the same thread."""
    job = await frontend.hub.get_job(job_id) if job_id.isalnum() else None
    if job is None or job.origin.platform != frontend.name:
        return
    context = job.origin.context
    file: SlackFile | None = None
    source = job.request.source
    if context.get("file_id") and context.get("file_url"):
        file = SlackFile(
            id=str(context["file_id"]),
            url=str(context["file_url"]),
            name=source.display_name,
            mimetype=source.content_type,
            size=source.size_bytes,
        )
    await frontend.launch(
        Ask(
            team_id=team,
            user_id=user,
            channel_id=str(metadata.get("channel") or job.origin.channel_id or ""),
            source=source,
            stems=stems,
            output_format=job.request.output_format,
            thread_ts=metadata.get("thread_ts"),
            response_url=metadata.get("response_url"),
            slack_file=file,
        )
    )


__all__ = ["build_app"]
