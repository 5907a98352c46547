"""Bodies a careless or hostile client sends: refused with 400 before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from stemhub.testing import write_test_tone
from tests.bridge.conftest import BridgeEnv

DEEP = ("[" * 1000 + "]" * 1000).encode()


async def _jobs(env: BridgeEnv) -> int:
    return await env.hub.count_jobs()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/jobs", b'{"sourceUrl": "http://127.0.0.1:9/a.mp3", "metadata": {"x": NaN}}'),
        (
            "/api/v1/jobs",
            b'{"sourceUrl": "http://127.0.0.1:9/a.mp3", "metadata": {"x": -Infinity}}',
        ),
        (
            "/api/v1/jobs",
            b'{"sourceUrl": "http://127.0.0.1:9/a.mp3", "metadata": {"x": ' + DEEP + b"}}",
        ),
        ("/v1/split", b'{"url": "http://127.0.0.1:9/a.mp3", "metadata": {"x": Infinity}}'),
        ("/v1/split", DEEP),
        ("/api/v1/webhooks", b'{"url": "http://127.0.0.1:9/h", "events": ' + DEEP + b"}"),
    ],
)
async def test_non_finite_numbers_and_deep_nesting_are_refused(
    env: BridgeEnv, path: str, body: bytes
) -> None:
    answer = await env.client.post(
        path, content=body, headers={**env.auth, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] in ("INVALID_REQUEST", "BAD_REQUEST")
    assert await _jobs(env) == 0


async def test_metadata_as_a_form_field_is_strict_too(env: BridgeEnv, tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    answer = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"metadata": '{"gain": NaN}'},
        headers=env.auth,
    )
    assert answer.status_code == 400 and "NaN" in answer.json()["error"]["message"]
    assert await _jobs(env) == 0
    assert list(env.bridge.uploads.folder.iterdir()) == []


async def test_lengths_are_limited(env: BridgeEnv) -> None:
    long_name = await env.client.post(
        "/api/v1/jobs",
        json={"sourceUrl": "http://127.0.0.1:9/a.mp3", "fileName": "a" * 10_000 + ".mp3"},
        headers=env.auth,
    )
    big_metadata = await env.client.post(
        "/api/v1/jobs",
        json={"sourceUrl": "http://127.0.0.1:9/a.mp3", "metadata": {"x": "y" * 100_000}},
        headers=env.auth,
    )
    assert long_name.status_code == 400 and "fileName" in long_name.json()["error"]["message"]
    assert big_metadata.status_code == 400 and "metadata" in big_metadata.json()["error"]["message"]
    assert await _jobs(env) == 0


async def _upload(env: BridgeEnv, song: Path) -> str:
    ticket = (
        await env.client.post("/api/v1/upload", json={"filename": "song.wav"}, headers=env.auth)
    ).json()
    put = await env.client.put(ticket["uploadUrl"], content=song.read_bytes())
    assert put.status_code == 200
    return str(ticket["uploadKey"]) + "\n" + str(ticket["uploadUrl"])


async def test_an_idempotency_key_reused_with_another_body_is_a_conflict(
    env: BridgeEnv, tmp_path: Path
) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    upload_key, _url = (await _upload(env, song)).split("\n")
    headers = {**env.auth, "Idempotency-Key": "order-7"}
    body = {"uploadKey": upload_key, "outputType": "BOTH"}
    first = await env.client.post("/api/v1/jobs", json=body, headers=headers)
    same = await env.client.post("/api/v1/jobs", json=body, headers=headers)
    other = await env.client.post(
        "/api/v1/jobs", json={**body, "outputType": "FOUR_STEMS"}, headers=headers
    )
    assert first.status_code == 201 and same.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    v1_first = await env.client.post(
        "/v1/split",
        json={"url": "http://127.0.0.1:9/a.mp3"},
        headers={**env.auth, "Idempotency-Key": "v1-key"},
    )
    v1_other = await env.client.post(
        "/v1/split",
        json={"url": "http://127.0.0.1:9/b.mp3"},
        headers={**env.auth, "Idempotency-Key": "v1-key"},
    )
    assert v1_first.status_code in (200, 202) and v1_other.status_code == 409
    assert await _jobs(env) == 2


async def test_an_upload_starts_one_job_and_cannot_be_replaced(
    env: BridgeEnv, tmp_path: Path
) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    upload_key, url = (await _upload(env, song)).split("\n")
    first = await env.client.post("/api/v1/jobs", json={"uploadKey": upload_key}, headers=env.auth)
    assert first.status_code == 201
    second = await env.client.post("/api/v1/jobs", json={"uploadKey": upload_key}, headers=env.auth)
    replaced = await env.client.put(url, content=b"not audio at all" * 100)
    assert (
        second.status_code == 409 and "already started a job" in second.json()["error"]["message"]
    )
    assert replaced.status_code == 409
    for answer in (second, replaced):
        assert "bridge-uploads" not in answer.text and str(tmp_path) not in answer.text
    done = await env.hub.wait_for(first.json()["id"], delivered=False, timeout=20)
    assert done.status.value == "COMPLETED", done.error_message
    assert await _jobs(env) == 1
