"""The result page as a builtin plugin (entry point ``web = "stemhub.web.plugin"``).

Loaded with every hub, so it stays light: the web modules are imported when the HTTP
app is built or a job completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from stemhub.plugin.marker import hookimpl

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from stemhub.hub import Hub
    from stemhub.models import Job


@hookimpl
def stemhub_register_routes(register: Callable[[BaseRoute], None], hub: Hub) -> None:
    """The result pages on a hub with a public URL; the operator page with a token."""
    if hub.settings.public_url:
        from stemhub.web.routes import result_routes

        for route in result_routes(hub):
            register(route)
    if hub.settings.operator_token is not None:
        from stemhub.web.operator import operator_routes

        for route in operator_routes(hub):
            register(route)


@hookimpl
async def stemhub_job_completed(hub: Hub, job: Job) -> None:
    """Peaks JSON and PNG of the stems in the job's folder, before the job is delivered."""
    from stemhub.web import waveforms

    files = waveforms.stem_files(hub, job)
    if not files:
        return
    computed = await asyncio.to_thread(waveforms.compute, files)
    if computed.peaks:
        folder = hub.outputs.job_dir(job.id)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(waveforms.write, folder, computed)


__all__ = ["stemhub_job_completed", "stemhub_register_routes"]
