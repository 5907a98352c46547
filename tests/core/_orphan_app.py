"""A hub that separates a song with the local engine, for the orphan-process test.

``python -m tests.core._orphan_app DATA_DIR SONG`` prints ``separating`` once the local
engine's pool is at work, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from stemhub.hub import Hub
from stemhub.models import JobRequest, Source, SourceKind
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import make_settings


async def main(data_dir: Path, song: Path) -> None:
    settings = make_settings(data_dir, default_backend="local", separate_concurrency=2)
    async with Hub(settings, pm=get_plugin_manager(only=())) as hub:
        request = JobRequest(source=Source(kind=SourceKind.FILE, path=str(song)))
        job = await hub.submit(request)
        async for seen in hub.watch(job.id, poll_s=0.05):
            if seen.progress > 0:
                break
        print("separating", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
