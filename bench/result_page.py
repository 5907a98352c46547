"""The result page's weight and how soon it shows something, for a 4-minute, 4-stem song.

Splits a synthesized song (``--seconds``, default 240) on a real hub, opens the page's
signed link in headless Chromium (Debian's ``/usr/bin/chromium``) with a cold cache
``--runs`` times, and prints:

- the page's weight: HTML (with the peaks JSON inside it), script, stylesheet, as sent;
- the time from the link click (navigation start) to the first waveform drawn
  (``performance.mark("stemhub:first-waveform")``) and to all waveforms, median of runs,
  beside the page's first contentful paint (the baseline: how soon anything at all
  shows);
- the baseline in the same run: what today's raw links make a person fetch before they
  hear anything (the four stems), and the page's time from pressing play to playing.

    uv run --all-packages python bench/result_page.py [--seconds 240] [--runs 5]
                                                      [--backend local|fake]
                                                      [--screenshots docs/images]

``--backend fake`` copies the mix into every stem instead of separating it (same file
sizes and the same number of peaks, so the same weight, in seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from stemhub.demo import write_demo_song
from stemhub.fetch import format_bytes
from stemhub.http import HubServer
from stemhub.hub import Hub
from stemhub.models import JobRequest, JobStatus, Source, SourceKind
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import FakeBackendControls, FakeBackendPlugin, free_port, make_settings

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_MARK = "(name) => performance.getEntriesByName(name).length > 0"


async def _weights(url: str) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        html = page.text
        sizes = {"HTML": len(page.content)}
        start = html.index('id="peaks">') + len('id="peaks">')
        sizes["  of which peaks JSON"] = len(html[start : html.index("</script>", start)].encode())
        for name, marker in (("script", "result.js?v="), ("stylesheet", "result.css?v=")):
            tail = html[html.index("/assets/stemhub/" + marker.split("?")[0]) :]
            asset = await client.get(page.url.join(tail[: tail.index('"')]))
            sizes[name] = len(asset.content)
    return sizes


async def _visit(browser: Any, url: str) -> dict[str, float]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function(_MARK, arg="stemhub:waveforms")
    marks = await page.evaluate(
        """() => ({
            first: performance.getEntriesByName('stemhub:first-waveform')[0].startTime,
            all: performance.getEntriesByName('stemhub:waveforms')[0].startTime,
            response: performance.getEntriesByType('navigation')[0].responseEnd,
            paint: performance.getEntriesByName('first-contentful-paint')[0].startTime,
        })"""
    )
    pressed = time.perf_counter()
    await page.click("#play")
    await page.wait_for_function(
        "() => document.getElementById('player').dataset.state === 'playing'", timeout=300_000
    )
    marks["play"] = (time.perf_counter() - pressed) * 1000
    await context.close()
    return {key: float(value) for key, value in marks.items()}


async def _screenshots(browser: Any, url: str, folder: Path) -> None:
    """Desktop (1280 wide, playing a third in, drums muted) and phone (390 wide)."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    desktop = await browser.new_page(viewport={"width": 1280, "height": 800})
    await desktop.goto(url)
    await desktop.click("#play")
    await desktop.wait_for_function(
        "() => document.getElementById('player').dataset.state === 'playing'", timeout=300_000
    )
    duration = float(await desktop.get_attribute("#player", "data-duration") or 0)
    await desktop.fill("#seek", f"{duration * 0.35:.1f}")
    await desktop.click(".stem[data-stem=drums] button.mute")
    await desktop.wait_for_timeout(400)
    await desktop.screenshot(path=str(folder / "result-page-desktop.png"), full_page=True)
    await desktop.close()
    phone = await browser.new_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    await phone.goto(url)
    await phone.wait_for_function(_MARK, arg="stemhub:waveforms")
    await phone.screenshot(path=str(folder / "result-page-phone.png"), full_page=True)
    await phone.close()


async def main(seconds: float, runs: int, backend: str, screenshots: Path | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="stemhub-bench-page-"))
    try:
        await _run(folder, seconds, runs, backend, screenshots)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)


async def _run(
    folder: Path, seconds: float, runs: int, backend: str, screenshots: Path | None
) -> None:
    from playwright.async_api import async_playwright

    port = free_port()
    settings = make_settings(
        folder / "data",
        default_backend=backend,
        public_url=f"http://127.0.0.1:{port}",
        http_port=port,
    )
    extra = [("bench-fake", FakeBackendPlugin(FakeBackendControls()))] if backend == "fake" else []
    song = write_demo_song(folder / "Bench Song.wav", seconds=seconds)
    pm = get_plugin_manager(only=(), extra=extra)
    async with Hub(settings, pm=pm) as hub, HubServer(hub, port=port).running():
        began = time.perf_counter()
        job = await hub.submit(JobRequest(source=Source(kind=SourceKind.FILE, path=str(song))))
        job = await hub.wait_for(job.id, timeout=3600)
        assert job.status is JobStatus.COMPLETED, job.error_message
        split_s = time.perf_counter() - began
        url = hub.result_page_url(job)
        assert url is not None
        sizes = await _weights(url)
        stems_bytes = sum(
            path.stat().st_size
            for output in job.outputs.values()
            if (path := hub.output_path(job, output)) is not None
        )
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=FLAGS
            )
            visits = [await _visit(browser, url) for _ in range(runs)]
            if screenshots is not None:
                await _screenshots(browser, url, screenshots)
            await browser.close()

    print(f"song: {seconds:.0f} s, {len(job.outputs)} stems, backend {backend}")
    print(f"split took {split_s:.1f} s")
    print("page weight (bytes as sent, uncompressed):")
    for name, size in sizes.items():
        print(f"  {name:<22} {size:>9,}  ({format_bytes(size)})")
    total = sum(v for k, v in sizes.items() if not k.startswith(" "))
    print(f"  {'total':<22} {total:>9,}  ({format_bytes(total)})")
    stems = f"{stems_bytes:,} ({format_bytes(stems_bytes)})"
    print(f"baseline, raw links: the stems themselves {stems}")

    def median(key: str) -> float:
        return statistics.median(v[key] for v in visits)

    print(f"cold visits: {runs}, median (ms since the link was clicked)")
    print(f"  response end           {median('response'):8.1f}")
    print(f"  first waveform drawn   {median('first'):8.1f}")
    print(f"  first contentful paint {median('paint'):8.1f}  (baseline: anything shows)")
    print(f"  all waveforms drawn    {median('all'):8.1f}")
    print(f"press play -> playing    {median('play'):8.1f} ms (fetch + decode of every stem)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=("local", "fake"), default="local")
    parser.add_argument("--screenshots", type=Path, help="write desktop and phone PNGs here")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.runs, args.backend, args.screenshots))
