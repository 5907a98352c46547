"""The bridge's job JSON links a finished job to its result page, in both dialects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stemhub import ErrorCode, StemhubError
from stemhub.testing import write_test_tone
from tests.bridge.conftest import BridgeEnv, Receiver, open_bridge


@pytest.fixture
async def public(tmp_path: Path) -> AsyncIterator[BridgeEnv]:
    """A bridge whose hub has a public URL, so it serves result pages."""
    async with open_bridge(tmp_path / "hub", public=True) as opened:
        yield opened


async def _split(env: BridgeEnv, song: Path) -> dict[str, object]:
    answer = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "10", "output_format": "WAV"},
        headers=env.auth,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_a_completed_job_links_its_result_page_in_both_dialects(
    public: BridgeEnv, tmp_path: Path
) -> None:
    job = await _split(public, write_test_tone(tmp_path / "song.wav"))
    assert job["status"] == "completed"
    page_url = job["result_page_url"]
    assert isinstance(page_url, str) and page_url.startswith(public.url + "/results/")

    page = await public.client.get(page_url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "vocals" in page.text

    polled = await public.client.get(f"/v1/jobs/{job['id']}", headers=public.auth)
    assert polled.json()["result_page_url"].startswith(public.url + "/results/")

    stemsplit = await public.client.get(f"/api/v1/jobs/{job['id']}", headers=public.auth)
    camel = stemsplit.json()["resultPageUrl"]
    assert camel.startswith(public.url + "/results/")
    assert (await public.client.get(camel)).status_code == 200

    listed = await public.client.get("/api/v1/jobs", headers=public.auth)
    assert listed.json()["jobs"][0]["resultPageUrl"].startswith(public.url + "/results/")


async def test_a_failed_job_has_no_result_page(public: BridgeEnv, tmp_path: Path) -> None:
    public.controls.fail_with = StemhubError(ErrorCode.BACKEND_ERROR, "The engine broke.")
    public.controls.fail_times = 1
    job = await _split(public, write_test_tone(tmp_path / "song.wav"))
    assert job["status"] == "failed"
    assert "result_page_url" in job and job["result_page_url"] is None

    stemsplit = await public.client.get(f"/api/v1/jobs/{job['id']}", headers=public.auth)
    assert stemsplit.json()["status"] == "FAILED"
    assert "resultPageUrl" not in stemsplit.json()


async def test_the_completed_callback_carries_the_result_page(
    public: BridgeEnv, receiver: Receiver, tmp_path: Path
) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    answer = await public.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"callback_url": receiver.url + "/hook/done", "output_format": "WAV"},
        headers=public.auth,
    )
    assert answer.status_code == 202, answer.text
    (post,) = await receiver.wait_for(1)
    event = json.loads(post.body)
    assert event["type"] == "job.completed"
    page_url = event["data"]["result_page_url"]
    assert isinstance(page_url, str) and page_url.startswith(public.url + "/results/")
    assert (await public.client.get(page_url)).status_code == 200
