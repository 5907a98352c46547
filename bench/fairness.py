"""Fair scheduling across tenants: one tenant's burst against another tenant's single job.

One API key submits ``--burst`` jobs, then another key submits one. The backend runs
``--slots`` separations at once, each taking ``--job-s`` seconds (the test backend of
``stemhub.testing``: a fixed duration, so the figure measures scheduling, not an engine).
Printed for fair scheduling on and, as the baseline in the same run, off: the single
job's wait (submit to completion) in seconds and in job times, and the burst's median and
last completion.

    uv run python -m bench.fairness --burst 200 --slots 2 --job-s 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from stemhub.hub import Hub
from stemhub.models import JobRequest, Origin, Source, SourceKind
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub, write_test_tone


async def one_run(
    fair: bool, burst: int, slots: int, job_s: float, folder: Path
) -> dict[str, float]:
    controls = FakeBackendControls(delay_s=job_s, concurrency=slots, progress_steps=1)
    settings = make_settings(
        folder / ("fair" if fair else "fifo"),
        default_backend="fake",
        fair_scheduling=fair,
        concurrency=64,
    )
    song = folder / "song.wav"

    def request(key: str) -> JobRequest:
        return JobRequest(
            source=Source(kind=SourceKind.FILE, path=str(song)),
            origin=Origin(platform="cli", api_key_id=key),
        )

    hub: Hub = open_test_hub(settings, controls)
    async with hub:
        began = time.monotonic()
        busy = [await hub.submit(request("busy")) for _ in range(burst)]
        single_at = time.monotonic()
        single = await hub.submit(request("quiet"))
        done_single = await hub.wait_for(single.id, timeout=3600)
        single_wait = time.monotonic() - single_at
        finished: list[float] = []
        for job in busy:
            await hub.wait_for(job.id, timeout=3600)
            finished.append(time.monotonic() - began)
        assert done_single.status.value == "COMPLETED"
    return {
        "single_wait_s": single_wait,
        "single_in_jobs": single_wait / job_s,
        "burst_p50_s": statistics.median(finished),
        "burst_last_s": max(finished),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--job-s", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_test_tone(folder / "song.wav", seconds=0.5)
        rows = []
        for fair in (True, False):
            figures = await one_run(fair, args.burst, args.slots, args.job_s, folder)
            rows.append(("fair (round-robin)" if fair else "first come (baseline)", figures))
    print(
        f"burst of {args.burst} jobs from one key, then 1 job from another; "
        f"{args.slots} separations at once, {args.job_s:.2f} s each"
    )
    header = ("single wait s", "= job times", "burst p50 s", "burst last s")
    print(f"{'scheduling':24} {header[0]:>14} {header[1]:>12} {header[2]:>12} {header[3]:>13}")
    for name, f in rows:
        print(
            f"{name:24} {f['single_wait_s']:14.2f} {f['single_in_jobs']:12.1f} "
            f"{f['burst_p50_s']:12.2f} {f['burst_last_s']:13.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
