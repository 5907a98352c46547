"""Delivering a finished job to Slack, resumable step by step, and the last-resort notice.

``job.delivery`` records each step as it is done: the status message (``status``), the
stems uploaded (``upload``, then ``uploaded``: stem -> file id), the summary in the thread
(``summary_ts``) and, for a failed job, that the person was told (``told``). Every step is
recorded through ``hub.record_delivery``, so a hub killed mid-delivery resumes where it
stopped and posts nothing twice.

When the hub gives up (:func:`notify_undelivered`), the person gets plain text in the most
private place that works, and the status line gets its last word: it never stays at
"separating 100%".
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from stemhub import Job, JobStatus, StemhubError
from stemhub_slack.messages import (
    error_text,
    final_status_text,
    result_message,
    undelivered_status_text,
    undelivered_text,
)
from stemhub_slack.uploads import Shared, upload_stems
from stemhub_slack.web_errors import api_error, as_stemhub_error, web_api

if TYPE_CHECKING:
    from stemhub_slack.frontend import SlackFrontend

log = logging.getLogger(__name__)

GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
"""chat.update errors that mean the status message cannot be edited any more."""
LAST_WORD_TRIES = 4
"""Tries of the status line's last edit when delivery has given up."""


async def deliver(frontend: SlackFrontend, job: Job) -> None:
    await frontend.wait_for_announcement(job.id)
    await frontend.progress.finish(job.id)
    status = await _status(frontend, job)
    if job.status is JobStatus.COMPLETED:
        await _deliver_stems(frontend, job, status)
    else:
        await _deliver_failure(frontend, job, status)
    await _final_status(frontend, job, status, final_status_text(job))
    frontend.forget_status(job.id)


async def _final_status(
    frontend: SlackFrontend, job: Job, status: dict[str, Any], text: str
) -> None:
    """Edit the status message to its last word; a message someone deleted stays deleted."""
    try:
        await frontend.update_message(status["channel"], status["ts"], text=text)
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
        await frontend.hub.record_delivery(job)
    return status


def _uploadable(frontend: SlackFrontend, job: Job) -> tuple[dict[str, Path], list[str]]:
    """The stems to upload (stem -> file) and the stems to link instead."""
    settings = frontend.settings
    upload: dict[str, Path] = {}
    link: list[str] = []
    for stem, output in job.outputs.items():
        path = frontend.hub.output_path(job, output)
        fits = (
            path is not None and path.is_file() and path.stat().st_size <= settings.upload_max_bytes
        )
        if settings.upload_stems and path is not None and fits:
            upload[stem] = path
        else:
            link.append(stem)
    return upload, link


async def _deliver_stems(frontend: SlackFrontend, job: Job, status: dict[str, Any]) -> None:
    hub = frontend.hub
    upload, to_link = _uploadable(frontend, job)
    shared: Shared | None = None
    if upload and "uploaded" not in job.delivery:
        shared = await upload_stems(frontend, job, status, upload)
    elif upload:
        record = job.delivery.get("upload") or {}
        shared = Shared(
            str(record.get("channel") or status["channel"]), bool(record.get("moved_to_dm"))
        )
    if "summary_ts" in job.delivery:
        return
    all_links = hub.links(job)
    if shared is not None and shared.moved_to_dm:
        to_link = list(job.outputs)  # the channel gets links to what went to the DM
    links = {stem: all_links[stem] for stem in to_link if stem in all_links}
    missing = [stem for stem in to_link if stem not in all_links]
    if missing:
        log.warning(
            "slack: no links for %s of job %s: set STEMHUB_PUBLIC_URL or allow uploads",
            missing,
            job.id,
        )
    text, blocks = result_message(
        job,
        links=links,
        uploaded=list(upload) if shared is not None and not shared.moved_to_dm else [],
        missing_links=missing,
        moved_to_dm=shared.channel if shared is not None and shared.moved_to_dm else None,
        app_name=frontend.settings.app_name,
        page_url=hub.result_page_url(job),
        picture_url=hub.waveform_png_url(job),
    )
    with web_api("chat.postMessage"):
        posted = await frontend.post_message(
            status["channel"],
            thread_ts=status["thread_ts"],
            text=text,
            blocks=blocks,
            unfurl_links=False,
        )
    job.delivery["summary_ts"] = str(posted["ts"])
    await hub.record_delivery(job)


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
    await frontend.hub.record_delivery(job)


async def notify_undelivered(frontend: SlackFrontend, job: Job, error: StemhubError) -> None:
    """Tell the person in plain text, privately, then give the status line its last word."""
    log.warning("slack: job %s was not delivered: %s", job.id, error.operator_message)
    links = frontend.hub.links(job) if job.status is JobStatus.COMPLETED else {}
    text = undelivered_text(job, error, links)
    status = job.delivery.get("status") or await frontend.status_of(job.id)
    user = job.origin.user_id
    channel = (status or {}).get("channel") or job.origin.channel_id or ""
    told = False
    if user:
        told = await frontend.tell_surely(
            user, channel, text, response_url=frontend.response_url_of(job)
        )
    if isinstance(status, dict):
        await _last_word(frontend, job, status, undelivered_status_text(job, told=told))
    frontend.forget_status(job.id)
    if not told:
        log.warning("slack: nobody could be told that job %s was not delivered", job.id)


async def _last_word(frontend: SlackFrontend, job: Job, status: dict[str, Any], text: str) -> None:
    for attempt in range(LAST_WORD_TRIES):
        try:
            await _final_status(frontend, job, status, text)
            return
        except StemhubError as error:
            if not error.retryable:
                log.info("slack: status line of job %s kept: %s", job.id, error.operator_message)
                return
            await asyncio.sleep(min(error.retry_after or 0.5 * 2**attempt, 5.0))


__all__ = ["deliver", "notify_undelivered"]
