"""Stems into Slack as ONE message: Slack's external upload flow, streamed from disk.

https://api.slack.com/methods/files.getUploadURLExternal gives an upload URL and a file
id per file; the bytes go to that URL; one
https://api.slack.com/methods/files.completeUploadExternal shares every file at once, as
one message in the thread. Each uploaded file id is recorded in ``job.delivery`` before the
next, so a restarted hub only sends the files that are missing, then completes.

The bytes are streamed from the file (never read whole into memory) with a timeout that
grows with the size instead of aiohttp's flat 300 s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError

from stemhub import ErrorCode, Job, StemhubError
from stemhub_slack.web_errors import NOT_IN_CHANNEL, api_error, as_stemhub_error, web_api

if TYPE_CHECKING:
    from stemhub_slack.frontend import SlackFrontend

log = logging.getLogger(__name__)

MIN_BYTES_PER_S = 100_000
"""An upload slower than this (about a bad mobile link) is given up and retried later."""
BASE_TIMEOUT_S = 60.0


def upload_timeout(size: int) -> aiohttp.ClientTimeout:
    """A minute plus the time ``size`` bytes take at :data:`MIN_BYTES_PER_S`."""
    return aiohttp.ClientTimeout(
        total=BASE_TIMEOUT_S + size / MIN_BYTES_PER_S, sock_connect=30.0, sock_read=BASE_TIMEOUT_S
    )


@dataclass(frozen=True)
class Shared:
    """Where the stems were shared: the channel, and whether the channel refused them."""

    channel: str
    moved_to_dm: bool


def stem_filename(job: Job, stem: str, path: Path) -> str:
    base = Path(job.request.source.display_name).stem or "song"
    return f"{base} - {stem}{path.suffix}"


async def _send_bytes(frontend: SlackFrontend, url: str, path: Path, size: int) -> None:
    session = frontend.http_session()
    try:
        with path.open("rb") as stream:
            async with session.post(url, data=stream, timeout=upload_timeout(size)) as answer:
                if answer.status != 200:
                    raise StemhubError(
                        ErrorCode.DELIVERY_FAILED,
                        "Slack did not take the stems; they will be sent again.",
                        retryable=True,
                        operator_message=f"upload to Slack answered HTTP {answer.status}",
                    )
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise as_stemhub_error(error, "file upload") from error


async def upload_stems(
    frontend: SlackFrontend, job: Job, status: dict[str, Any], stems: dict[str, Path]
) -> Shared:
    """Upload ``stems`` (stem -> file) and share them in the status thread as one message.

    A channel that refuses files (the app is not a member: ``chat:write.public`` covers
    messages, not files) gets them shared in the person's DM instead; the caller says so
    in the channel.
    """
    record: dict[str, Any] = job.delivery.setdefault("upload", {})
    sent: dict[str, dict[str, str]] = record.setdefault("files", {})
    client = frontend.client
    for stem, path in stems.items():
        if stem in sent:
            continue
        name = stem_filename(job, stem, path)
        size = path.stat().st_size
        with web_api("files.getUploadURLExternal"):
            target = await client.files_getUploadURLExternal(filename=name, length=size)
        await _send_bytes(frontend, str(target["upload_url"]), path, size)
        sent[stem] = {"id": str(target["file_id"]), "title": f"{stem} · {name}"}
        await frontend.hub.record_delivery(job)
    files: list[dict[str, str | None]] = [
        {"id": sent[stem]["id"], "title": sent[stem]["title"]} for stem in stems
    ]
    try:
        await client.files_completeUploadExternal(
            files=files, channel_id=status["channel"], thread_ts=status["thread_ts"]
        )
        shared = Shared(status["channel"], moved_to_dm=False)
    except SlackApiError as error:
        reason = api_error(error)
        if reason == "file_not_found":
            # the uploads expired (or were never finished): start them again next try
            record["files"] = {}
            await frontend.hub.record_delivery(job)
            raise StemhubError(
                ErrorCode.DELIVERY_FAILED,
                "Slack lost the uploaded stems; they will be sent again.",
                retryable=True,
                operator_message="files.completeUploadExternal: file_not_found",
            ) from error
        if reason not in NOT_IN_CHANNEL or not job.origin.user_id:
            raise as_stemhub_error(error, "files.completeUploadExternal") from error
        shared = await _share_in_dm(frontend, job, files, str(status["channel"]))
    except (aiohttp.ClientError, TimeoutError) as error:
        raise as_stemhub_error(error, "files.completeUploadExternal") from error
    record["channel"] = shared.channel
    record["moved_to_dm"] = shared.moved_to_dm
    job.delivery["uploaded"] = {stem: sent[stem]["id"] for stem in stems}
    await frontend.hub.record_delivery(job)
    return shared


async def _share_in_dm(
    frontend: SlackFrontend, job: Job, files: list[dict[str, str | None]], refused_in: str
) -> Shared:
    name = job.request.source.display_name
    with web_api("files.completeUploadExternal"):
        dm = await frontend.open_dm(str(job.origin.user_id))
        await frontend.client.files_completeUploadExternal(
            files=files,
            channel_id=dm,
            initial_comment=(
                f"Stems of *{name}*: I'm not a member of <#{refused_in}>, so I can't "
                "upload files there."
            ),
        )
    log.info("slack: %s refused the stems of job %s; shared in a DM", refused_in, job.id)
    return Shared(dm, moved_to_dm=True)


__all__ = ["Shared", "stem_filename", "upload_stems", "upload_timeout"]
