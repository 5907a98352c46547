"""The fake speaks the real dialect: the official ``stemsplit-python`` SDK runs against it.

The SDK's models are strict about the shapes the hosted API returns (required fields,
literal statuses, typed links), so driving it against the fake checks that the fake,
and the wire models it shares with the backend, follow the real service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import soundfile
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stemhub.testing import write_test_tone
from tests.fakes.stemsplit import FIXED_BPM, FIXED_KEY, run_fake_stemsplit, serve_asgi

sdk = pytest.importorskip("stemsplit_python")

FACTOR = 0.05


async def test_the_official_sdk_uploads_waits_downloads_and_lists(tmp_path: Path) -> None:
    audio = write_test_tone(tmp_path / "song.wav", seconds=1.5)
    async with run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0) as fake:

        def use_sdk() -> dict[str, Any]:
            with sdk.StemSplit(api_key=fake.api_key, base_url=fake.base_url) as client:
                handle = client.jobs.create(
                    audio=audio,
                    output_type="FOUR_STEMS",
                    output_format="WAV",
                    metadata={"order": 7},
                    idempotency_key="sdk-1",
                )
                again = client.jobs.create(
                    audio=audio, output_type="FOUR_STEMS", idempotency_key="sdk-1"
                )
                final = handle.wait(timeout=30, poll_interval=0.02)
                files = handle.download_all(tmp_path / "stems")
                youtube = client.youtube_jobs.create(url="https://youtu.be/dQw4w9WgXcQ").wait(
                    timeout=30, poll_interval=0.02
                )
                return {
                    "id": handle.id,
                    "again": again.id,
                    "final": final,
                    "files": files,
                    "listed": client.jobs.list(limit=5, status="COMPLETED"),
                    "balance": client.account.balance(),
                    "youtube": youtube,
                    "limit": client.last_rate_limit,
                }

        seen = await asyncio.to_thread(use_sdk)
    final = seen["final"]
    assert seen["again"] == seen["id"]
    assert final.status == "COMPLETED" and final.metadata == {"order": 7}
    assert (final.audio_metadata.bpm, final.audio_metadata.key) == (FIXED_BPM, FIXED_KEY)
    assert set(final.outputs.as_dict()) == {"vocals", "drums", "bass", "other"}
    for path in seen["files"].values():
        assert soundfile.info(str(path)).frames == soundfile.info(str(audio)).frames
    assert [h.id for h in seen["listed"]] == [seen["id"]]
    assert seen["balance"].balance_seconds == 36000 - 2 - 10  # the song, the 10 s video
    assert "full_audio" in seen["youtube"].outputs.as_dict()
    assert seen["limit"].limit == 60 and seen["limit"].remaining is not None


async def test_the_sdk_verifies_the_fakes_webhook_deliveries(tmp_path: Path) -> None:
    audio = write_test_tone(tmp_path / "song.wav", seconds=1.0)
    received: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.body(), request.headers["x-webhook-signature"]))
        return JSONResponse({"ok": True})

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with (
        run_fake_stemsplit(time_factor=FACTOR, processing_s=2.0) as fake,
        serve_asgi(receiver) as origin,
    ):

        def use_sdk() -> str:
            with sdk.StemSplit(api_key=fake.api_key, base_url=fake.base_url) as client:
                created = client.webhooks.create(url=origin + "/hook")
                assert [h.secret for h in client.webhooks.list()] == [None]
                client.jobs.create(audio=audio, output_type="BOTH").wait(poll_interval=0.02)
                secret: str = created.secret
                return secret

        secret = await asyncio.to_thread(use_sdk)
        await fake.state.wait_for_deliveries(1)
    payload, signature = received[0]
    event = sdk.webhooks.verify_and_parse(payload=payload, signature=signature, secret=secret)
    assert event.event == "job.completed"
    assert event.data.status == "COMPLETED" and event.data.outputs.vocals is not None
    with pytest.raises(sdk.SignatureVerificationError):
        sdk.webhooks.verify_and_parse(payload=payload + b" ", signature=signature, secret=secret)


async def test_the_sdk_sees_the_documented_errors(tmp_path: Path) -> None:
    short = write_test_tone(tmp_path / "blip.wav", seconds=0.1)
    async with run_fake_stemsplit(time_factor=FACTOR) as fake:

        def use_sdk() -> list[tuple[type[Exception], str | None]]:
            out: list[tuple[type[Exception], str | None]] = []
            attempts: list[tuple[str, Any]] = [
                ("sk_test_wrong", lambda c: c.account.balance()),
                (fake.api_key, lambda c: c.jobs.create(audio=short)),
                (fake.api_key, lambda c: c.jobs.get("nope")),
            ]
            for key, call in attempts:
                with sdk.StemSplit(api_key=key, base_url=fake.base_url) as client:
                    try:
                        call(client)
                    except sdk.APIStatusError as exc:
                        out.append((type(exc), exc.code))
            return out

        seen = await asyncio.to_thread(use_sdk)
    assert seen == [
        (sdk.AuthenticationError, "INVALID_API_KEY"),
        (sdk.BadRequestError, "AUDIO_TOO_SHORT"),
        (sdk.NotFoundError, "JOB_NOT_FOUND"),
    ]
