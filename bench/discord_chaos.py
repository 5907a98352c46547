"""Discord plugin under chaos: seeded journeys against the strict simulator, and figures.

Each journey is one person using the bot while the simulated Discord refuses calls at
random with refusals those calls can really get (``tests/fakes/discord.py``, chaos mode).
Prints how many journeys ended silent, with a double post, or with a private result made
public (all three must be 0), and what Discord refused along the way.

    uv run --all-packages --frozen python -m bench.discord_chaos --journeys 1000 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from stemhub.testing import write_test_tone
from tests.discord._journeys import run_journeys
from tests.fakes.discord import running_fake_discord


async def main(journeys: int, seed: int, rate: float, concurrency: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        song = write_test_tone(Path(folder) / "song.wav", seconds=1.0)
        async with running_fake_discord({"song.wav": song}) as fake:
            figures = await run_journeys(
                fake,
                Path(folder) / "data",
                count=journeys,
                seed=seed,
                rate=rate,
                concurrency=concurrency,
            )
            refused = fake.chaos.refused if fake.chaos is not None else {}
            calls = len(fake.calls)
    print(figures.line())
    print("journeys by kind:", dict(sorted(figures.by_kind.items())))
    print(f"Discord calls: {calls}; refused by chaos: {sum(refused.values())}")
    for kind, count in sorted(refused.items()):
        print(f"  {kind}: {count}")
    for problem in figures.problems[:20]:
        print("PROBLEM", problem)
    return 1 if (figures.silent or figures.double or figures.leaked) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.15, help="share of calls refused")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.journeys, args.seed, args.rate, args.concurrency)))
