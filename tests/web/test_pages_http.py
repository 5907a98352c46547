"""The result and operator pages over real loopback HTTP (no browser needed)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from stemhub.errors import ErrorCode, StemhubError
from stemhub.http import HubServer
from stemhub.hub import Hub
from stemhub.models import Job, JobRequest, JobStatus, Source, SourceKind
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub
from stemhub.web.operator import COOKIE
from tests.web._hubthread import free_port

TOKEN = "op-token-for-tests-0123456789"


@pytest_asyncio.fixture
async def served(
    tmp_path: Path, stemhub_fake_backend: FakeBackendControls
) -> AsyncIterator[tuple[Hub, str]]:
    port = free_port()
    settings = make_settings(
        tmp_path / "data",
        default_backend="fake",
        public_url=f"http://127.0.0.1:{port}",
        http_port=port,
        operator_token=TOKEN,
    )
    hub = open_test_hub(settings, stemhub_fake_backend)
    await hub.open()
    try:
        async with HubServer(hub, port=port).running() as server:
            yield hub, server.url
    finally:
        await hub.close()


async def _submit(hub: Hub, audio: Path) -> Job:
    return await hub.submit(JobRequest(source=Source(kind=SourceKind.FILE, path=str(audio))))


async def test_a_completed_job_has_a_page_with_escaped_name_and_strict_csp(
    served: tuple[Hub, str], stemhub_audio_file: Path
) -> None:
    hub, _base = served
    source = Source(
        kind=SourceKind.FILE,
        path=str(stemhub_audio_file),
        filename="<script>alert(1)</script> & co.wav",
    )
    job = await hub.wait_for((await hub.submit(JobRequest(source=source))).id, timeout=30)
    url = hub.result_page_url(job)
    assert url is not None
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        assert page.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page.text
        assert "<script>alert" not in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        for asset in ("result.js", "result.css"):
            link = f"/assets/stemhub/{asset}?v="
            assert link in page.text
            served_asset = await client.get(page.url.join(link))
            assert served_asset.status_code == 200 and served_asset.content
        # a HEAD of the page (link unfurlers) is answered like a GET
        head = await client.head(url)
        assert head.status_code == 200
        picture = await client.get(hub.waveform_png_url(job) or "")
        assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
        assert picture.content == (hub.waveform_png(job) or Path()).read_bytes()


async def test_running_and_failed_jobs_get_a_plain_page(
    served: tuple[Hub, str],
    stemhub_fake_backend: FakeBackendControls,
    stemhub_audio_file: Path,
) -> None:
    hub, _base = served
    stemhub_fake_backend.delay_s = 30
    running = await _submit(hub, stemhub_audio_file)
    async with httpx.AsyncClient() as client:
        page = await client.get(hub.result_page_url(running) or "")
        assert page.status_code == 200
        assert "Still splitting" in page.text and 'http-equiv="refresh"' in page.text
        await hub.cancel(running.id)

        stemhub_fake_backend.delay_s = 0
        stemhub_fake_backend.fail_with = StemhubError(
            ErrorCode.BACKEND_ERROR, "The separation service broke down."
        )
        stemhub_fake_backend.fail_times = 1
        failed = await hub.wait_for((await _submit(hub, stemhub_audio_file)).id, timeout=30)
        assert failed.status is JobStatus.FAILED
        page = await client.get(hub.result_page_url(failed) or "")
        assert page.status_code == 200
        assert "This split failed" in page.text
        assert "The separation service broke down." in page.text
        zip_link = (hub.result_page_url(failed) or "").replace("?", "/stems.zip?")
        no_zip = await client.get(zip_link)
        assert no_zip.status_code == 404 and "text/html" in no_zip.headers["content-type"]


async def test_page_routes_exist_only_with_a_public_url(
    stemhub_hub: Hub, stemhub_audio_file: Path
) -> None:
    job = await stemhub_hub.wait_for((await _submit(stemhub_hub, stemhub_audio_file)).id)
    async with HubServer(stemhub_hub, port=0).running() as server, httpx.AsyncClient() as client:
        missing = await client.get(f"{server.url}/results/{job.id}?exp=1&sig=x")
        assert missing.status_code == 404
        operator = await client.get(f"{server.url}/operator")
        assert operator.status_code == 404


async def test_operator_page_needs_the_token(
    served: tuple[Hub, str],
    stemhub_fake_backend: FakeBackendControls,
    stemhub_audio_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hub, base = served
    done = await hub.wait_for((await _submit(hub, stemhub_audio_file)).id, timeout=30)
    stemhub_fake_backend.fail_with = StemhubError(ErrorCode.BACKEND_ERROR, "Broke.")
    stemhub_fake_backend.fail_times = 1
    failed = await hub.wait_for((await _submit(hub, stemhub_audio_file)).id, timeout=30)

    async with httpx.AsyncClient(base_url=base) as client:
        anonymous = await client.get("/operator")
        assert anonymous.status_code == 401
        assert 'type="password"' in anonymous.text and done.id[:8] not in anonymous.text

        wrong = await client.post("/operator/login", data={"token": TOKEN[:-1] + "x"})
        assert wrong.status_code == 401 and "not right" in wrong.text
        assert COOKIE not in wrong.cookies

        async with httpx.AsyncClient(
            base_url=base, cookies={COOKIE: "9999999999." + "0" * 64}
        ) as forger:
            assert (await forger.get("/operator")).status_code == 401

        signed_in = await client.post("/operator/login", data={"token": TOKEN})
        assert signed_in.status_code == 303
        session = signed_in.cookies[COOKIE]
        assert TOKEN not in session
        set_cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie

        page = await client.get("/operator")
        assert page.status_code == 200
        assert done.id[:8] in page.text and failed.id[:8] in page.text
        assert "BACKEND_ERROR" in page.text and "Broke." in page.text
        assert "content-security-policy" in page.headers

        bearer = await client.get("/operator", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200 and failed.id[:8] in bearer.text
        bad_bearer = await client.get("/operator", headers={"Authorization": "Bearer nope"})
        assert bad_bearer.status_code == 401
    assert TOKEN not in caplog.text
