"""Under chaos, every journey ends with the person told: never silent, never twice, never
leaked. A small seeded run here; ``bench/discord_chaos.py`` runs 1,000 and prints figures.
"""

from __future__ import annotations

from pathlib import Path

from tests.discord._journeys import KINDS, run_journeys
from tests.fakes.discord import FakeDiscord


async def test_seeded_journeys_under_chaos_end_with_the_person_told(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    figures = await run_journeys(
        fake_discord, tmp_path / "data", count=3 * len(KINDS), seed=12, concurrency=6
    )
    assert figures.journeys == 3 * len(KINDS)
    assert set(figures.by_kind) == set(KINDS)
    assert sum(fake_discord.chaos.refused.values()) > 0 if fake_discord.chaos else False
    assert (figures.silent, figures.double, figures.leaked) == (0, 0, 0), figures.problems
