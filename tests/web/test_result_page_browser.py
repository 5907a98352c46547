"""The result page in a real browser, on a job made by a real split.

A short synthesized song goes through the embedded local engine on a hub with the CLI
frontend; headless Chromium opens the page's signed link, plays it, solos and mutes,
downloads a stem and the ZIP, and opens forged, swapped and expired links.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import soundfile

from stemhub.demo import write_demo_song
from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, JobStatus, Source, SourceKind
from stemhub.testing import make_settings
from stemhub.web.links import page_query
from tests.web._hubthread import HubThread, free_port

pytestmark = pytest.mark.slow

SONG_SECONDS = 6.0


@pytest.fixture(scope="module")
def split(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubThread, Job]]:
    """The split every test opens; asks for the browser first, so a missing one skips fast."""
    folder = tmp_path_factory.mktemp("result-page")
    port = free_port()
    settings = make_settings(
        folder / "data",
        default_backend="local",
        public_url=f"http://127.0.0.1:{port}",
        http_port=port,
    )
    song = write_demo_song(folder / "Night Drive.wav", seconds=SONG_SECONDS)
    hub = HubThread(settings).start()

    async def run(h: Hub) -> Job:
        job = await h.submit(JobRequest(source=Source(kind=SourceKind.FILE, path=str(song))))
        return await h.wait_for(job.id, timeout=300)

    try:
        job = hub.call(run)
        assert job.status is JobStatus.COMPLETED, job.error_message
        yield hub, job
    finally:
        hub.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    opened = context.new_page()
    opened.errors = []
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.on(
        "console",
        lambda message: opened.errors.append(message.text) if message.type == "error" else None,
    )
    try:
        yield opened
    finally:
        context.close()


def _page_url(split: tuple[HubThread, Job]) -> str:
    hub, job = split
    url = hub.hub.result_page_url(job)
    assert url is not None
    return url


def _gains(page: Any) -> dict[str, float]:
    rows = page.query_selector_all(".stem")
    return {row.get_attribute("data-stem"): float(row.get_attribute("data-gain")) for row in rows}


def _position(page: Any) -> float:
    return float(page.get_attribute("#player", "data-position"))


def test_every_stem_has_a_row_with_its_waveform(split: tuple[HubThread, Job], page: Any) -> None:
    hub, job = split
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    response = page.goto(_page_url(split))
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp

    stems = [row.get_attribute("data-stem") for row in page.query_selector_all(".stem")]
    assert stems == list(job.outputs) == ["vocals", "drums", "bass", "other"]
    assert page.inner_text("h1") == "Night Drive"
    facts = page.text_content(".facts") or ""
    assert "BPM" in facts and "Key" in facts and job.audio is not None
    assert f"{job.audio.bpm:.0f}" in facts and str(job.audio.key) in facts
    assert "local engine" in page.inner_text(".meta")

    page.wait_for_function("() => performance.getEntriesByName('stemhub:waveforms').length")
    # every waveform has lit pixels in its stem's colour, drawn from the peaks JSON
    lit = page.evaluate(
        """() => Array.from(document.querySelectorAll('canvas.wave')).map((c) => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n / (c.width * c.height);
        })"""
    )
    assert len(lit) == 4 and all(share > 0.05 for share in lit), lit
    png = hub.hub.waveform_png(job)
    assert png is not None and png.read_bytes().startswith(b"\x89PNG")

    origin = hub.url
    assert requests and all(url.startswith(origin + "/") for url in requests), requests
    assert page.errors == []


def test_play_advances_and_all_stems_play_from_one_transport(
    split: tuple[HubThread, Job], page: Any
) -> None:
    page.goto(_page_url(split))
    assert _position(page) == 0
    page.click("#play")
    page.wait_for_function(
        "() => document.getElementById('player').dataset.state === 'playing'", timeout=60_000
    )
    page.wait_for_function(
        "() => parseFloat(document.getElementById('player').dataset.position) > 0.5"
    )
    assert page.get_attribute("#play", "aria-label") == "Pause"
    page.click("#play")
    stopped = _position(page)
    assert page.get_attribute("#player", "data-state") == "paused"
    page.wait_for_timeout(300)
    assert _position(page) == stopped, "the position must hold while paused"
    assert page.errors == []


def test_solo_mute_and_volume_set_the_gain_of_the_right_stems(
    split: tuple[HubThread, Job], page: Any
) -> None:
    page.goto(_page_url(split))
    page.click("#play")
    page.wait_for_function("() => document.getElementById('player').dataset.state === 'playing'")
    assert _gains(page) == {"vocals": 1, "drums": 1, "bass": 1, "other": 1}

    page.click(".stem[data-stem=vocals] button.solo")
    assert _gains(page) == {"vocals": 1, "drums": 0, "bass": 0, "other": 0}
    page.click(".stem[data-stem=bass] button.solo")
    assert _gains(page) == {"vocals": 1, "drums": 0, "bass": 1, "other": 0}
    assert page.get_attribute(".stem[data-stem=bass] button.solo", "aria-pressed") == "true"
    page.click(".stem[data-stem=vocals] button.solo")
    page.click(".stem[data-stem=bass] button.solo")
    assert _gains(page) == {"vocals": 1, "drums": 1, "bass": 1, "other": 1}

    # keyboard only: Tab to a mute button, Space presses it
    page.focus(".stem[data-stem=drums] button.mute")
    page.keyboard.press("Space")
    assert _gains(page) == {"vocals": 1, "drums": 0, "bass": 1, "other": 1}
    assert page.get_attribute(".stem[data-stem=drums] button.mute", "aria-pressed") == "true"

    page.fill(".stem[data-stem=other] input.volume", "0.5")
    assert _gains(page)["other"] == pytest.approx(0.5)
    # a muted stem stays silent whatever is soloed
    page.click(".stem[data-stem=drums] button.solo")
    assert _gains(page) == {"vocals": 0, "drums": 0, "bass": 0, "other": 0}
    assert page.errors == []


def test_space_toggles_play_and_controls_have_names(
    split: tuple[HubThread, Job], page: Any
) -> None:
    page.goto(_page_url(split))
    unnamed = page.evaluate(
        """() => Array.from(document.querySelectorAll('button, input, a, canvas'))
            .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim()))
            .map((el) => el.outerHTML)"""
    )
    assert unnamed == []
    page.keyboard.press("Space")
    page.wait_for_function("() => document.getElementById('player').dataset.state === 'playing'")
    page.keyboard.press("Space")
    page.wait_for_function("() => document.getElementById('player').dataset.state === 'paused'")


def _decode(data: bytes) -> tuple[np.ndarray[Any, Any], int]:
    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return audio, int(rate)


def test_download_one_stem_and_the_zip(
    split: tuple[HubThread, Job], page: Any, tmp_path: Path
) -> None:
    hub, job = split
    page.goto(_page_url(split))
    with page.expect_download() as stem_download:
        page.click(".stem[data-stem=vocals] a.download")
    saved = tmp_path / "vocals.wav"
    stem_download.value.save_as(saved)
    on_disk = hub.hub.output_path(job, job.outputs["vocals"])
    assert on_disk is not None and saved.read_bytes() == on_disk.read_bytes()
    audio, rate = _decode(saved.read_bytes())
    assert rate == 44100 and abs(len(audio) / rate - SONG_SECONDS) < 0.05

    with page.expect_download() as zip_download:
        page.click("a.zip")
    archive = tmp_path / "stems.zip"
    zip_download.value.save_as(archive)
    assert zip_download.value.suggested_filename == "Night Drive - stems.zip"
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        names = sorted(opened.namelist())
        assert names == sorted(f"Night Drive - {stem}.wav" for stem in job.outputs)
        for stem in job.outputs:
            audio, rate = _decode(opened.read(f"Night Drive - {stem}.wav"))
            assert abs(len(audio) / rate - SONG_SECONDS) < 0.05


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    rest = "&".join(f"{key}={value}" for key, value in query.items())
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{rest}"


def test_forged_swapped_and_expired_links_get_a_clear_page(
    split: tuple[HubThread, Job], page: Any
) -> None:
    hub, job = split
    good = _page_url(split)
    signature = parse_qs(urlsplit(good).query)["sig"][0]
    forged = _with_query(good, sig="A" * len(signature))
    later = _with_query(good, exp=str(int(parse_qs(urlsplit(good).query)["exp"][0]) + 3600))
    swapped = good.replace(job.id, "0" * len(job.id))
    past = page_query(hub.hub.outputs, job.id, int(time.time()) - 5)
    expired = f"{hub.url}/results/{job.id}?{past}"
    # a stem's own file signature opens that file, never the page
    stem_link = hub.hub.links(job)["vocals"][0]
    file_sig = parse_qs(urlsplit(stem_link).query)
    with_file_sig = _with_query(good, exp=file_sig["exp"][0], sig=file_sig["sig"][0])
    forged_zip = _with_query(good.replace(f"/results/{job.id}", f"/results/{job.id}/stems.zip"))
    forged_zip = _with_query(forged_zip, sig="B" * len(signature))
    cases = [
        (forged, 403, "This link is not valid"),
        (later, 403, "This link is not valid"),
        (swapped, 403, "This link is not valid"),
        (with_file_sig, 403, "This link is not valid"),
        (forged_zip, 403, "This link is not valid"),
        (expired, 410, "This link has expired"),
    ]
    for url, status, title in cases:
        response = page.goto(url)
        assert response.status == status, url
        assert title in page.inner_text("h1")
        body = page.content()
        assert "Traceback" not in body and '"error"' not in body
        assert response.headers["content-type"].startswith("text/html")


def test_fits_a_phone_screen(split: tuple[HubThread, Job], browser: Any) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    try:
        phone = context.new_page()
        phone.goto(_page_url(split))
        phone.wait_for_function("() => performance.getEntriesByName('stemhub:waveforms').length")
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
        # every control is on screen and big enough to hit with a thumb
        sizes = phone.evaluate(
            """() => Array.from(document.querySelectorAll('button, a.download, a.zip'))
                .map((el) => { const r = el.getBoundingClientRect();
                               return [r.left, r.right, r.width, r.height]; })"""
        )
        assert sizes and all(left >= 0 and right <= 390 for left, right, _w, _h in sizes)
        assert all(width >= 32 and height >= 32 for _l, _r, width, height in sizes)
    finally:
        context.close()
