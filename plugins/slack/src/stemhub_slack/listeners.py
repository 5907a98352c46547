"""The bolt app: one listener per way in, each acking at once and working afterwards.

``process_before_response=True`` makes bolt answer Slack as soon as a listener returns,
without polling for ``ack()``; listeners therefore only parse, ack, and hand the rest to
:meth:`SlackFrontend.spawn`. Events are deduplicated by ``event_id`` in the hub's store
(first writer wins), so a retry (``X-Slack-Retry-Num``) or a second hub instance never
handles an event twice.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from stemhub.errors import StemhubError
from stemhub.models import StemSet
from stemhub_slack.access import is_dm
from stemhub_slack.arguments import parse_split_text, parse_stems
from stemhub_slack.ask import Ask, SlackFile, first_audio_file
from stemhub_slack.keys import EVENTS_NS, FILES_NS
from stemhub_slack.manifest import SHORTCUT_CALLBACK_ID
from stemhub_slack.messages import (
    ANOTHER_SET_ACTION,
    FRESH_LINKS_ACTION,
    MODAL_CALLBACK_ID,
    STEMS_BLOCK,
    STEMS_INPUT,
    URL_BLOCK,
    URL_INPUT,
    error_text,
    links_text,
    split_modal,
)

if TYPE_CHECKING:
    from stemhub_slack.frontend import SlackFrontend

log = logging.getLogger(__name__)

NO_AUDIO = (
    ":mag: I found no audio file in that message. Use *Split stems* on a message with an "
    "MP3, WAV, FLAC or similar file, or `/split <link>`."
)
DM_NOT_AUDIO = ":musical_note: Send me an audio file (MP3, WAV, FLAC, …) and I'll split it."


def build_app(frontend: SlackFrontend, *, signing_secret: str) -> AsyncApp:
    settings = frontend.settings
    hub = frontend.hub

    async def authorize() -> AuthorizeResult:
        return await frontend.authorize()

    # bolt's own client carries no token: the one from authorize() is set per request
    app = AsyncApp(
        name="stemhub",
        client=AsyncWebClient(base_url=settings.api_url, session=frontend.client.session),
        signing_secret=signing_secret,
        authorize=authorize,
        process_before_response=True,
        logger=logging.getLogger("stemhub_slack.bolt"),
    )

    async def once_per_event(
        body: dict[str, Any], request: AsyncBoltRequest, next: Any
    ) -> BoltResponse | None:
        """Drop events another delivery of which was already taken (retries, other hubs)."""
        event_id = body.get("event_id")
        if body.get("type") == "event_callback" and event_id:
            retries = request.headers.get("x-slack-retry-num") or []
            retry = retries[0] if retries else None
            first = await hub.store.kv_add(
                EVENTS_NS, str(event_id), {"retry": retry}, ttl_s=settings.event_dedupe_s
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
            frontend.spawn(frontend.client.views_open(trigger_id=command["trigger_id"], view=view))
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
        response_url = shortcut.get("response_url")
        file = first_audio_file(message.get("files"))
        if file is None:
            frontend.spawn(
                frontend.tell(user, channel, NO_AUDIO, response_url=response_url, thread_ts=None)
            )
            return
        ask = Ask(
            team_id=(shortcut.get("team") or {}).get("id"),
            user_id=user,
            channel_id=channel,
            source=file.source(),
            stems=settings.default_stems,
            output_format=settings.default_format,
            thread_ts=message.get("thread_ts") or message.get("ts") or shortcut.get("message_ts"),
            response_url=response_url,
            slack_file=file,
        )
        frontend.spawn(frontend.launch(ask))

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
                {"channel": channel, "thread_ts": thread, "response_url": body.get("response_url")},
            )
        )

    app.action(ANOTHER_SET_ACTION)(another_stem_set)

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
    if file is None and item.get("id"):
        info = await frontend.client.files_info(file=str(item["id"]))
        file = SlackFile.from_payload(info.get("file") or {})
    if file is None or not file.is_audio:
        if not await frontend.hub.store.kv_add(
            FILES_NS, f"{file.id if file else item.get('id')}:not-audio", True, ttl_s=3600
        ):
            return
        await frontend.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=DM_NOT_AUDIO
        )
        return
    if not await frontend.hub.store.kv_add(FILES_NS, file.id, {"channel": channel}, ttl_s=86400):
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
    info = await frontend.client.files_info(file=file_id)
    raw: dict[str, Any] = info.get("file") or {}
    shares = ((raw.get("shares") or {}).get("private") or {}).get(channel) or []
    thread_ts = shares[0].get("ts") if shares else None
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
    job = await frontend.hub.get_job(job_id) if job_id.isalnum() else None
    if job is None or job.origin.platform != frontend.name:
        text = ":warning: I no longer have that job; split the song again."
    else:
        try:
            job = await frontend.hub.refresh_links(job.id)
        except StemhubError as error:
            log.info("slack: could not refresh links of %s: %s", job_id, error.code.value)
        text = links_text(job, frontend.hub.outputs.output_links(job))
    await frontend.tell(user, channel, text, response_url=body.get("response_url"), thread_ts=None)


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
    await frontend.client.views_open(trigger_id=trigger_id, view=view)


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
