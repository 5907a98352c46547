"""Under seeded chaos, every journey ends with the person told, once (``bench/slack_chaos.py``
runs 1,000 of them)."""

from __future__ import annotations

import pytest

from tests.slack.conftest import SlackWorld
from tests.slack.journeys import KINDS, Journeys


@pytest.mark.parametrize("seed", [1, 2])
async def test_seeded_journeys_under_chaos_are_never_silent_nor_doubled(
    slack_world: SlackWorld, seed: int
) -> None:
    slack_world.controls.delay_s = 0.05
    slack_world.controls.progress_steps = 2
    journeys = Journeys(slack_world, seed=seed, rate=0.15)
    await journeys.start()

    await journeys.run(len(KINDS) * 2, concurrency=6)
    report = await journeys.report()

    assert report.journeys == 12
    assert sum(report.refusals.values()) > 0  # chaos really refused calls
    assert report.silent == []
    assert report.double_posts == []
    assert report.stale == []
    assert report.misthreaded == []
