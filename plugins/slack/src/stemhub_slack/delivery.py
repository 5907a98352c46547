"""Delivering a finished job to Slack, resumable step by step.

``job.delivery`` records each step as it is done: the status message (``status``), each
stem uploaded (``uploaded``: stem -> file id), the summary in the thread (``summary_ts``)
and, for a failed job, that the person was told (``told``). The hub saves the job after
every step, so a hub killed mid-delivery resumes where it stopped and posts nothing twice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import Job, JobStatus
from stemhub_slack.messages import error_text, final_status_text, result_message
from stemhub_slack.web_errors import NOT_IN_CHANNEL, api_error, as_stemhub_error, web_api

if TYPE_CHECKING:
    from stemhub_slack.frontend import SlackFrontend

log = logging.getLogger(__name__)

GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
"""chat.update errors that mean the status message cannot be edited any more."""


async def deliver(frontend: SlackFrontend, job: Job) -> None:
    await frontend.wait_for_announcement(job.id)
    await frontend.progress.finish(job.id)
    status = await _status(frontend, job)
    if job.status is JobStatus.COMPLETED:
        await _deliver_stems(frontend, job, status)
    else:
        await _deliver_failure(frontend, job, status)
    await _final_status(frontend, job, status)
    frontend.forget_status(job.id)


async def _final_status(frontend: SlackFrontend, job: Job, status: dict[str, Any]) -> None:
    """Edit the status message to its last word; a message someone deleted stays deleted."""
    try:
        await frontend.client.chat_update(
            channel=status["channel"], ts=status["ts"], text=final_status_text(job)
        )
    except SlackApiError as error:
        if api_error(error) not in GONE:
            raise as_stemhub_error(error, "chat.update") from error
        log.info("slack: status of job %s is gone (%s)", job.id, api_error(error))
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as error:
        raise as_stemhub_error(error, "chat.update") from error


async def _status(frontend: SlackFrontend, job: Job) -> dict[str, Any]:
    """The job's status message: recorded, remembered, or (first delivery) posted now."""
    status = job.delivery.get("status")
    if not isinstance(status, dict):
        status = await frontend.status_of(job.id)
    if status is None:
        with web_api("chat.postMessage"):
            status = await frontend.post_status(job, final_status_text(job))
    if job.delivery.get("status") != status:
        job.delivery["status"] = status
        await frontend.hub.save(job)
    return status


async def _move_to_dm(frontend: SlackFrontend, job: Job, status: dict[str, Any]) -> None:
    """The channel refused a file or message: continue in the person's DM."""
    user = job.origin.user_id
    if not user:
        raise StemhubError(ErrorCode.DELIVERY_FAILED, "The channel refused the stems.")
    with web_api("conversations.open"):
        dm = await frontend.open_dm(user)
        posted = await frontend.client.chat_postMessage(
            channel=dm, text=final_status_text(job), unfurl_links=False
        )
    status.update(channel=dm, ts=str(posted["ts"]), thread_ts=str(posted["ts"]))
    job.delivery["status"] = status
    await frontend.hub.save(job)


def _stem_filename(job: Job, stem: str, path: Path) -> str:
    base = Path(job.request.source.display_name).stem or "song"
    return f"{base} - {stem}{path.suffix}"


async def _upload_once(
    frontend: SlackFrontend, job: Job, status: dict[str, Any], stem: str, path: Path
) -> str:
    uploaded = await frontend.client.files_upload_v2(
        channel=status["channel"],
        thread_ts=status["thread_ts"],
        file=str(path),
        filename=_stem_filename(job, stem, path),
        title=f"{stem} · {job.request.source.display_name}",
        request_file_info=False,
    )
    files: list[dict[str, Any]] = uploaded.get("files") or []
    return str(files[0]["id"]) if files else ""


async def _upload(
    frontend: SlackFrontend, job: Job, status: dict[str, Any], stem: str, path: Path
) -> str:
    """Upload one stem into the thread (files_upload_v2); the DM if the channel refuses."""
    try:
        return await _upload_once(frontend, job, status, stem, path)
    except SlackApiError as error:
        if api_error(error) not in NOT_IN_CHANNEL:
            raise as_stemhub_error(error, "files_upload_v2") from error
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as error:
        raise as_stemhub_error(error, "files_upload_v2") from error
    await _move_to_dm(frontend, job, status)
    with web_api("files_upload_v2"):
        return await _upload_once(frontend, job, status, stem, path)


async def _deliver_stems(frontend: SlackFrontend, job: Job, status: dict[str, Any]) -> None:
    settings = frontend.settings
    hub = frontend.hub
    uploaded: dict[str, str] = job.delivery.setdefault("uploaded", {})
    to_link: list[str] = []
    for stem, output in job.outputs.items():
        if stem in uploaded:
            continue
        path = hub.outputs.path_of(job, output)
        fits = (
            path is not None and path.is_file() and path.stat().st_size <= settings.upload_max_bytes
        )
        if not settings.upload_stems or path is None or not fits:
            to_link.append(stem)
            continue
        uploaded[stem] = await _upload(frontend, job, status, stem, path)
        await hub.save(job)
    if "summary_ts" in job.delivery:
        return
    all_links = hub.outputs.output_links(job)
    links = {stem: all_links[stem] for stem in to_link if stem in all_links}
    missing = [stem for stem in to_link if stem not in all_links]
    if missing:
        log.warning(
            "slack: no links for %s of job %s: set STEMHUB_PUBLIC_URL or allow uploads",
            missing,
            job.id,
        )
    text, blocks = result_message(
        job, links=links, uploaded=[s for s in job.outputs if s in uploaded], missing_links=missing
    )
    with web_api("chat.postMessage"):
        posted = await frontend.client.chat_postMessage(
            channel=status["channel"],
            thread_ts=status["thread_ts"],
            text=text,
            blocks=blocks,
            unfurl_links=False,
        )
    job.delivery["summary_ts"] = str(posted["ts"])
    await hub.save(job)


async def _deliver_failure(frontend: SlackFrontend, job: Job, status: dict[str, Any]) -> None:
    if job.delivery.get("told"):
        return
    user = job.origin.user_id
    if user:
        text = error_text(
            job.error_code,
            job.error_message,
            slack_file=bool(job.origin.context.get("file_id")),
        )
        with web_api("chat.postEphemeral"):
            await frontend.tell(
                user,
                status["channel"],
                text,
                response_url=frontend.response_url_of(job),
                thread_ts=status.get("thread_ts"),
            )
    job.delivery["told"] = True
    await frontend.hub.save(job)


__all__ = ["deliver"]
