"""The StemSplit backend's error paths and retry rules, against respx-mocked HTTP.

Every answer the hosted API documents becomes a stemhub error code with a message for
the person who asked; retries happen only where replaying cannot do anything twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import respx

from stemhub.backends.base import SeparationTask
from stemhub.backends.stemsplit.backend import StemSplitBackend, StemSplitTuning
from stemhub.backends.stemsplit.pacing import ScaledClock
from stemhub.backends.stemsplit.settings import StemSplitSettings
from stemhub.errors import ConfigError, ErrorCode, StemhubError
from stemhub.models import OutputFormat, StemSet
from stemhub.testing import make_settings, write_test_tone

BASE = "https://stemsplit.test/api/v1"
KEY = "sk_live_do-not-leak-4242"
EXPIRES = "2030-01-01T00:00:00Z"
TUNING = StemSplitTuning(
    rate_limit=6000,
    backoff_base_s=0.05,
    backoff_max_s=0.2,
    poll_min_s=0.05,
    poll_max_s=0.2,
)


def _completed(job_id: str = "j1") -> dict[str, Any]:
    return {
        "id": job_id,
        "status": "COMPLETED",
        "progress": 100,
        "outputs": {
            stem: {
                "url": f"https://cdn.test/{job_id}/{stem}.wav",
                "expiresAt": "2030-01-01T00:00:00Z",
            }
            for stem in ("vocals", "instrumental")
        },
        "audioMetadata": {"bpm": 98.0, "key": "D major"},
    }


JSON = {"content-type": "application/json"}


def _error(status: int, code: str, message: str = "nope", **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, **extra}})


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(0.01)


@pytest_asyncio.fixture
async def backend(tmp_path: Path, clock: ScaledClock) -> AsyncIterator[StemSplitBackend]:
    stemsplit = StemSplitSettings(_env_file=None, api_key=KEY, base_url=BASE)
    backend = StemSplitBackend(
        make_settings(tmp_path / "data"), stemsplit, tuning=TUNING, clock=clock
    )
    yield backend
    await backend.close()


def _task(tmp_path: Path, **fields: Any) -> SeparationTask:
    values: dict[str, Any] = {
        "job_id": "job42",
        "stem_set": StemSet.BOTH,
        "stems": StemSet.BOTH.stems,
        "output_format": OutputFormat.WAV,
        "source_url": "https://example.test/song.mp3",
        "filename": "song.mp3",
        "out_dir": tmp_path / "out",
    }
    values.update(fields)
    return SeparationTask(**values)


def _assert_no_secret(error: StemhubError) -> None:
    for text in (error.message, error.operator_message or "", repr(error), str(error.details)):
        assert KEY not in text


@pytest.mark.parametrize(
    ("api_code", "code", "words"),
    [
        ("FILE_TOO_LARGE", ErrorCode.FILE_TOO_LARGE, "50 MB"),
        ("AUDIO_TOO_LONG", ErrorCode.AUDIO_TOO_LONG, "60 minutes"),
        ("AUDIO_TOO_SHORT", ErrorCode.AUDIO_TOO_SHORT, "too short"),
        ("UNSUPPORTED_FORMAT", ErrorCode.UNSUPPORTED_FORMAT, "MP3, WAV"),
    ],
)
async def test_400_codes_become_stemhub_codes_worded_for_the_user(
    backend: StemSplitBackend, tmp_path: Path, api_code: str, code: ErrorCode, words: str
) -> None:
    with respx.mock(base_url=BASE) as api:
        create = api.post("/jobs").mock(return_value=_error(400, api_code))
        with pytest.raises(StemhubError) as caught:
            await backend.start(_task(tmp_path))
    assert caught.value.code is code
    assert words in caught.value.message
    assert not caught.value.retryable
    assert create.call_count == 1


@pytest.mark.parametrize(
    ("status", "api_code"), [(401, "INVALID_API_KEY"), (403, "API_KEY_REVOKED")]
)
async def test_a_bad_or_revoked_key_is_told_to_the_operator_not_the_user(
    backend: StemSplitBackend, tmp_path: Path, status: int, api_code: str
) -> None:
    with respx.mock(base_url=BASE) as api:
        create = api.post("/jobs").mock(return_value=_error(status, api_code))
        with pytest.raises(StemhubError) as caught:
            await backend.start(_task(tmp_path))
    error = caught.value
    assert error.code is ErrorCode.BACKEND_AUTH
    assert "operator" in error.message and "STEMSPLIT_API_KEY" not in error.message
    assert error.operator_message is not None
    assert "STEMSPLIT_API_KEY" in error.operator_message and api_code in error.operator_message
    assert create.call_count == 1
    _assert_no_secret(error)


async def test_no_credit_gives_the_operator_the_seconds_needed_and_where_to_buy(
    backend: StemSplitBackend, tmp_path: Path
) -> None:
    with respx.mock(base_url=BASE) as api:
        api.post("/jobs").mock(
            return_value=_error(
                402,
                "INSUFFICIENT_CREDITS",
                requiredSeconds=240,
                purchaseUrl="https://stemsplit.test/buy",
            )
        )
        with pytest.raises(StemhubError) as caught:
            await backend.start(_task(tmp_path))
    error = caught.value
    assert error.code is ErrorCode.INSUFFICIENT_CREDITS
    assert error.details["required_seconds"] == 240
    assert error.operator_message is not None
    assert "240 s" in error.operator_message
    assert "https://stemsplit.test/buy" in error.operator_message
    assert "credit" in error.message


async def test_an_unknown_job_is_not_found(backend: StemSplitBackend) -> None:
    with respx.mock(base_url=BASE) as api:
        get = api.get("/jobs/gone").mock(return_value=_error(404, "JOB_NOT_FOUND"))
        with pytest.raises(StemhubError) as caught:
            await backend.refresh_outputs("gone")
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert get.call_count == 1


async def test_a_429_waits_retry_after_then_goes_on(
    backend: StemSplitBackend, clock: ScaledClock
) -> None:
    with respx.mock(base_url=BASE) as api:
        get = api.get("/jobs/j1").mock(
            side_effect=[
                httpx.Response(
                    429,
                    headers={"Retry-After": "3", "X-RateLimit-Remaining": "0"},
                    json={"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "slow down"}},
                ),
                httpx.Response(200, json=_completed()),
            ]
        )
        started = clock.monotonic()
        result = await backend.refresh_outputs("j1")
        waited = clock.monotonic() - started
    assert get.call_count == 2
    assert waited >= 3.0
    assert set(result.stems) == {"vocals", "instrumental"}
    assert backend.pacer.stats.pauses >= 1


async def test_429_is_waited_out_only_a_bounded_number_of_times(
    backend: StemSplitBackend,
) -> None:
    with respx.mock(base_url=BASE) as api:
        get = api.get("/jobs/j1").mock(
            return_value=httpx.Response(
                429, headers={"Retry-After": "1"}, json={"error": {"code": "RATE_LIMIT_EXCEEDED"}}
            )
        )
        with pytest.raises(StemhubError) as caught:
            await backend.refresh_outputs("j1")
    assert get.call_count == TUNING.max_rate_limit_retries + 1
    assert caught.value.code is ErrorCode.RATE_LIMITED
    assert caught.value.retryable and caught.value.retry_after is not None


async def test_one_429_pauses_every_request_of_the_hub(
    backend: StemSplitBackend, clock: ScaledClock
) -> None:
    arrivals: dict[str, list[float]] = {"a": [], "b": []}
    limited = asyncio.Event()

    def answer_a(request: httpx.Request) -> httpx.Response:
        arrivals["a"].append(clock.monotonic())
        if len(arrivals["a"]) == 1:
            limited.set()
            return httpx.Response(429, headers={"Retry-After": "10"}, json={"error": {}})
        return httpx.Response(200, json=_completed("a"))

    def answer_b(request: httpx.Request) -> httpx.Response:
        arrivals["b"].append(clock.monotonic())
        return httpx.Response(200, json=_completed("b"))

    with respx.mock(base_url=BASE) as api:
        api.get("/jobs/a").mock(side_effect=answer_a)
        api.get("/jobs/b").mock(side_effect=answer_b)
        first = asyncio.create_task(backend.refresh_outputs("a"))
        await limited.wait()
        await backend.refresh_outputs("b")
        await first
    assert arrivals["b"][0] - arrivals["a"][0] >= 10.0
    assert arrivals["a"][1] - arrivals["a"][0] >= 10.0


async def test_5xx_on_reads_is_replayed_then_reported_as_retryable(
    backend: StemSplitBackend,
) -> None:
    with respx.mock(base_url=BASE) as api:
        flaky = api.get("/jobs/j1").mock(
            side_effect=[
                httpx.Response(503),
                httpx.Response(502),
                httpx.Response(200, json=_completed()),
            ]
        )
        result = await backend.refresh_outputs("j1")
        assert flaky.call_count == 3
        assert result.bpm == 98.0
        down = api.get("/jobs/j2").mock(return_value=httpx.Response(500, text="oops"))
        with pytest.raises(StemhubError) as caught:
            await backend.refresh_outputs("j2")
    assert down.call_count == TUNING.max_replays + 1
    assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE
    assert caught.value.retryable


async def test_create_is_replayed_after_a_5xx_with_the_same_idempotency_key(
    backend: StemSplitBackend, tmp_path: Path
) -> None:
    with respx.mock(base_url=BASE) as api:
        create = api.post("/jobs").mock(
            side_effect=[
                httpx.Response(502),
                httpx.ReadTimeout("slow"),
                httpx.Response(201, json={"id": "remote1", "status": "PENDING"}),
            ]
        )
        remote_id = await backend.start(_task(tmp_path))
    assert remote_id == "remote1"
    keys = {call.request.headers["idempotency-key"] for call in create.calls}
    assert keys == {"stemhub-job42"}
    assert create.call_count == 3


async def test_a_post_without_idempotency_key_is_not_replayed_once_sent(
    backend: StemSplitBackend,
) -> None:
    client = backend.client
    with respx.mock(base_url=BASE) as api:
        failing = api.post("/jobs").mock(return_value=httpx.Response(500))
        with pytest.raises(StemhubError) as caught:
            await client.request("POST", "/jobs", json={"sourceUrl": "https://x.test/a.mp3"})
        assert failing.call_count == 1
        assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE

        timing_out = api.post("/youtube-jobs").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(StemhubError):
            await client.request("POST", "/youtube-jobs", json={"youtubeUrl": "u"})
        assert timing_out.call_count == 1

        refused_then_ok = api.post("/webhooks").mock(
            side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json={"id": "w"})]
        )
        assert await client.request("POST", "/webhooks", json={"url": "u"}) == {"id": "w"}
        assert refused_then_ok.call_count == 2


async def test_timeouts_and_unreadable_answers_on_reads_are_replayed(
    backend: StemSplitBackend,
) -> None:
    with respx.mock(base_url=BASE) as api:
        get = api.get("/jobs/j1").mock(
            side_effect=[
                httpx.ReadTimeout("slow"),
                httpx.Response(
                    200, content=b'{"id": "j1", "stat', headers={"content-type": "application/json"}
                ),
                httpx.Response(200, json=_completed()),
            ]
        )
        result = await backend.refresh_outputs("j1")
    assert get.call_count == 3
    assert result.key == "D major"


async def test_a_missing_key_is_a_config_error_naming_the_setting_and_sends_nothing(
    tmp_path: Path,
) -> None:
    stemsplit = StemSplitSettings(_env_file=None, api_key=None, base_url=BASE)
    backend = StemSplitBackend(make_settings(tmp_path / "data"), stemsplit, tuning=TUNING)
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        anything = api.route().mock(return_value=httpx.Response(200, json={}))
        with pytest.raises(ConfigError) as caught:
            await backend.start(_task(tmp_path))
        with pytest.raises(ConfigError):
            await backend.describe()
    assert "STEMSPLIT_API_KEY" in caught.value.message
    assert anything.call_count == 0
    await backend.close()


async def test_upload_streams_the_file_without_authorization_and_with_its_length(
    backend: StemSplitBackend, tmp_path: Path
) -> None:
    audio = write_test_tone(tmp_path / "take one.wav", seconds=1.0)
    with respx.mock(base_url=BASE) as api:
        ticket = api.post("/upload").mock(
            return_value=httpx.Response(
                200,
                json={
                    "uploadUrl": "https://storage.test/put/abc?X-Sig=1",
                    "uploadKey": "uploads/api_x/take_one.wav",
                    "expiresAt": "2030-01-01T00:00:00Z",
                    "contentType": "audio/wav",
                },
            )
        )
        put = api.put("https://storage.test/put/abc").mock(return_value=httpx.Response(200))
        create = api.post("/jobs").mock(
            return_value=httpx.Response(201, json={"id": "r1", "status": "PENDING"})
        )
        task = _task(tmp_path, source_url=None, input_path=audio, filename="take one.wav")
        assert await backend.start(task) == "r1"
    ticket_body = ticket.calls.last.request.content
    assert b'"filename":"take one.wav"' in ticket_body
    assert b'"contentType":"audio/wav"' in ticket_body
    sent = put.calls.last.request
    assert "authorization" not in sent.headers
    assert "transfer-encoding" not in sent.headers
    assert sent.headers["content-length"] == str(audio.stat().st_size)
    assert sent.content == audio.read_bytes()
    assert ticket.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    job_body = create.calls.last.request.content
    for field in (
        b'"uploadKey":"uploads/api_x/take_one.wav"',
        b'"outputType":"BOTH"',
        b'"outputFormat":"WAV"',
        b'"fileName":"take one.wav"',
    ):
        assert field in job_body


async def test_an_expired_upload_url_gets_one_new_ticket(
    backend: StemSplitBackend, tmp_path: Path
) -> None:
    audio = write_test_tone(tmp_path / "a.wav", seconds=0.5)
    with respx.mock(base_url=BASE) as api:
        ticket = api.post("/upload").mock(
            return_value=httpx.Response(
                200, json={"uploadUrl": "https://storage.test/p", "uploadKey": "k"}
            )
        )
        put = api.put("https://storage.test/p").mock(
            side_effect=[httpx.Response(403, text="Request has expired"), httpx.Response(200)]
        )
        api.post("/jobs").mock(return_value=httpx.Response(201, json={"id": "r2"}))
        assert await backend.start(_task(tmp_path, source_url=None, input_path=audio)) == "r2"
    assert ticket.call_count == 2
    assert put.call_count == 2


async def test_a_file_over_50_mb_is_refused_before_any_upload(
    backend: StemSplitBackend, tmp_path: Path
) -> None:
    big = tmp_path / "big.wav"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024 + 1)
    with respx.mock(base_url=BASE, assert_all_called=False) as api:
        anything = api.route().mock(return_value=httpx.Response(200, json={}))
        with pytest.raises(StemhubError) as caught:
            await backend.start(_task(tmp_path, source_url=None, input_path=big))
    assert caught.value.code is ErrorCode.FILE_TOO_LARGE
    assert anything.call_count == 0


async def test_the_backend_shows_no_secret_in_its_repr(backend: StemSplitBackend) -> None:
    assert KEY not in repr(backend)
    assert KEY not in repr(backend.client)
    assert "api_key=set" in repr(backend)
