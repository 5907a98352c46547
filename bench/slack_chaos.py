"""Slack under chaos: N seeded journeys, none silent, none doubled; Web API figures.

Every journey of ``tests/slack/journeys.py`` (``/split <link>``, ``/split`` + modal, the
shortcut on a file or a Slack Connect stub, a file in a DM, "Another stem set", ``/split``
with the hub restarted mid-delivery) runs against the strict simulator while its seeded
chaos refuses a share of the calls (``--rate``) with errors each method can really get.
Printed: silent journeys, double posts, stale status lines and lost replies (each must
be 0), Web API calls per job, and the peak calls in one second in one channel.

The baseline in the same run: the same journeys with chaos off, so the cost of chaos in
calls per job is read against it. Rate limits run ``--time-scale`` times faster than
Slack's on both sides (the simulator's windows, the plugin's pace), so 1,000 journeys fit
in minutes; the peak per second is in that scaled time (divide by the scale for Slack's).

    uv run python bench/slack_chaos.py [--journeys 1000] [--seed 1] [--rate 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stemhub.testing import write_test_tone  # noqa: E402
from tests.slack import conftest as world_setup  # noqa: E402
from tests.slack.journeys import Journeys, Report  # noqa: E402


async def _run(count: int, seed: int, rate: float, concurrency: int, scale: float) -> Report:
    world_setup.TIME_SCALE = scale
    monkeypatch = pytest.MonkeyPatch()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            audio = write_test_tone(work / "tone.wav", seconds=0.5).read_bytes()
            async with AsyncExitStack() as stack:
                world = await world_setup.build_world(stack, work, monkeypatch, audio)
                world.controls.delay_s = 0.05
                world.controls.progress_steps = 2
                journeys = Journeys(world, seed=seed, rate=rate)
                try:
                    await journeys.start()
                    await journeys.run(count, concurrency=concurrency)
                    return await journeys.report()
                finally:
                    for hub in list(world.hubs):
                        await hub.close()
    finally:
        monkeypatch.undo()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.1, help="share of calls chaos refuses")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--baseline", type=int, default=120, help="journeys without chaos")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    runs = [
        ("baseline (no chaos)", args.baseline, 0.0),
        (f"chaos {args.rate:.0%}", args.journeys, args.rate),
    ]
    failed = False
    for label, count, rate in runs:
        started = time.monotonic()
        report = asyncio.run(_run(count, args.seed, rate, args.concurrency, args.time_scale))
        print(f"== {label}, seed {args.seed}, {time.monotonic() - started:.0f} s")
        for line in report.lines():
            print("  " + line)
        for what in (report.silent, report.double_posts, report.stale, report.misthreaded):
            for item in what[:10]:
                print("  !", item)
        failed |= bool(report.silent or report.double_posts or report.stale or report.misthreaded)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
