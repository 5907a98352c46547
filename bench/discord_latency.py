"""Discord plugin: time from command to first response (defer), and edits per job.

Runs the real plugin against the loopback fake of Discord's REST API used by the tests.
Interactions are handed to discord.py the way the gateway does, and the clock stops when
the fake receives the interaction callback. The baseline is a bare discord.py bot whose
/split only defers, in the same process and against the same fake, so the figure shows
what stemhub adds (checks, sealing the token, building the request) on top of
discord.py's own dispatch and HTTP round trip.

    uv run --all-packages python -m bench.discord_latency [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import discord
import stemhub_discord.plugin
from discord import app_commands
from stemhub_discord import DiscordFrontend

from stemhub import Job
from stemhub.hub import Hub
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub, write_test_tone
from tests.discord import _payloads as p
from tests.fakes.discord import FakeDiscord, running_fake_discord


def _summary(name: str, samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return (
        f"{name:<28} median {statistics.median(ordered):6.2f} ms   p95 {p95:6.2f} ms"
        f"   max {ordered[-1]:6.2f} ms   (n={len(ordered)})"
    )


async def _first_response_ms(fake: FakeDiscord, dispatch: Any, payload: dict[str, Any]) -> float:
    path = f"/interactions/{payload['id']}/"
    fake.receive(payload)  # Discord sent it: the simulator accepts its token from now
    start = time.perf_counter()
    dispatch(payload)
    while True:
        found = fake.find("POST", path)
        if found:
            return (found[0].at - start) * 1000
        await asyncio.sleep(0.0005)


async def _baseline(fake: FakeDiscord, runs: int) -> list[float]:
    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)

    @tree.command(name="split", description="defer only")
    async def split(interaction: discord.Interaction[Any], file: discord.Attachment) -> None:
        await interaction.response.defer(thinking=True)

    await client.login("fake-bot-token")
    try:
        samples = []
        for _ in range(runs):
            attachment = p.attachment("song.wav", 1000, fake.cdn_url("song.wav"))
            payload = p.split_command(file=attachment)
            samples.append(
                await _first_response_ms(fake, client._connection.parse_interaction_create, payload)
            )
        return samples
    finally:
        await client.close()


async def _job_of(hub: Hub, payload: dict[str, Any]) -> Job:
    key = f"discord:{payload['id']}"
    while True:
        job = await hub.job_by_idempotency_key(key)
        if job is not None:
            return job
        await asyncio.sleep(0.001)


async def _stemhub(
    fake: FakeDiscord, size: int, data: Path, runs: int, job_seconds: list[float]
) -> tuple[list[float], dict[float, tuple[int, float]]]:
    controls = FakeBackendControls(progress_steps=50)
    settings = make_settings(
        data, default_backend="fake", allow_private_networks=True, public_url="https://x.test"
    )
    hub = open_test_hub(settings, controls, frontends=["discord"])
    hub.pm.register(stemhub_discord.plugin, name="discord")
    await hub.open()
    frontend = hub.frontends["discord"]
    assert isinstance(frontend, DiscordFrontend)
    await frontend.login()
    dispatch = frontend.client._connection.parse_interaction_create
    try:
        samples = []
        for _ in range(runs):
            payload = p.split_command(file=p.attachment("song.wav", size, fake.cdn_url("song.wav")))
            samples.append(await _first_response_ms(fake, dispatch, payload))
            job = await _job_of(hub, payload)
            await hub.wait_for(job.id, timeout=30)
        edits: dict[float, tuple[int, float]] = {}
        for seconds in job_seconds:
            controls.delay_s = seconds
            payload = p.split_command(file=p.attachment("song.wav", size, fake.cdn_url("song.wav")))
            fake.receive(payload)
            dispatch(payload)
            job = await _job_of(hub, payload)
            done = await hub.wait_for(job.id, timeout=seconds + 30)
            patches = fake.find("PATCH", f"/{payload['token']}/messages/@original")
            edits[seconds] = (len(patches), float(done.delivery.get("progress_edits", 0)))
        return samples, edits
    finally:
        await hub.close()


async def main(runs: int, job_seconds: list[float]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        song = write_test_tone(Path(folder) / "song.wav", seconds=1.0)
        os.environ["STEMHUB_CONFIG"] = str(Path(folder) / "absent.toml")
        os.environ["STEMHUB_DISCORD_TOKEN"] = "fake-bot-token"
        async with running_fake_discord({"song.wav": song}) as fake:
            os.environ["STEMHUB_DISCORD_API_BASE_URL"] = fake.api
            discord.http.Route.BASE = fake.api
            baseline = await _baseline(fake, runs)
            size = song.stat().st_size
            ours, edits = await _stemhub(fake, size, Path(folder) / "data", runs, job_seconds)
    print("command -> first response (interaction callback received by the fake Discord)")
    print(_summary("baseline: discord.py defer", baseline))
    print(_summary("stemhub /split", ours))
    print(f"stemhub adds {statistics.median(ours) - statistics.median(baseline):+.2f} ms (median)")
    print("message edits per job (progress_edit_interval_s = 3.0; includes the result edit)")
    for seconds, (total, progress) in edits.items():
        print(f"  job of {seconds:5.1f} s: {total} edits ({progress:.0f} progress + the result)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--job-seconds", type=float, nargs="*", default=[0.5, 10.0, 30.0])
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.job_seconds))
