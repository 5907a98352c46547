"""A hub joins the cluster: its backends become queue proxies; old objects are removed.

Objects follow the hub's retention rule: the hub's retention pass (``Hub.cleanup_outputs``)
removes a job's stems and input, through :func:`object_remover`, once the job is
delivered and older than ``retention_hours``, and then marks it EXPIRED. A job that was not
delivered keeps them whatever its age (the person has not got their stems yet); a
bucket lifecycle rule, if the operator adds one, must be longer than the longest time a
job may wait for delivery (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from stemhub.cluster.objects import ObjectStore, delete_job_objects, open_object_store
from stemhub.cluster.proxy import QueuedBackend
from stemhub.cluster.records import NAMESPACE
from stemhub.cluster.tasks import make_app
from stemhub.models import Job

if TYPE_CHECKING:
    from celery import Celery

    from stemhub.backends.base import Backend
    from stemhub.hub import Hub

log = logging.getLogger(__name__)


@dataclass
class Attachment:
    app: Celery
    objects: ObjectStore
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


_ATTACHED: dict[int, Attachment] = {}


def _proxy(attachment: Attachment, hub: Hub, name: str, backend: Backend) -> Backend:
    return QueuedBackend(
        name,
        backend,
        app=attachment.app,
        objects=attachment.objects,
        kv=hub.kv(NAMESPACE),
        link_ttl_s=hub.settings.link_ttl_s,
        lost_after_s=hub.settings.lost_task_after_s,
    )


async def attach(hub: Hub) -> Attachment:
    """Put every backend of ``hub`` behind a queue proxy; retention removes objects."""
    settings = hub.settings
    assert settings.broker_url is not None
    attachment = Attachment(
        app=make_app(
            settings.broker_url.get_secret_value(),
            visibility_timeout_s=settings.broker_visibility_timeout_s,
        ),
        objects=open_object_store(settings),
    )
    hub.add_backend_wrapper(partial(_proxy, attachment, hub))
    _ATTACHED[id(hub)] = attachment
    hub.add_output_remover(object_remover(attachment.objects))
    return attachment


async def detach(hub: Hub) -> None:
    attachment = _ATTACHED.pop(id(hub), None)
    if attachment is None:
        return
    for task in attachment.tasks:
        task.cancel()
    await asyncio.gather(*attachment.tasks, return_exceptions=True)
    await attachment.objects.close()
    await asyncio.to_thread(attachment.app.close)


def object_remover(objects: ObjectStore) -> Callable[[Job], Awaitable[int]]:
    """What the hub's retention pass runs for each expiring job: remove its objects."""

    async def remove(job: Job) -> int:
        return await delete_job_objects(objects, job.id)

    return remove


__all__ = ["Attachment", "attach", "detach", "object_remover"]
