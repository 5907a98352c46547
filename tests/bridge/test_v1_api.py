"""The n8n/Zapier surface over real HTTP: split, wait, download, zip, REST hooks."""

from __future__ import annotations

import email.message
import io
import json
import zipfile
from pathlib import Path

import soundfile
import standardwebhooks
from stemhub_n8n_bridge import StandardWebhookReceiver

from stemhub.testing import write_test_tone
from tests.bridge.conftest import BridgeEnv, Receiver, run_receiver


def attachment_name(disposition: str) -> str | None:
    message = email.message.Message()
    message["content-disposition"] = disposition
    return message.get_filename()


def frames(data: bytes) -> int:
    audio, _rate = soundfile.read(io.BytesIO(data), always_2d=True)
    return int(audio.shape[0])


async def test_multipart_split_waits_for_the_finished_job(env: BridgeEnv, tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "My Song.wav")
    answer = await env.client.post(
        "/v1/split",
        files={"data": ("My Song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "10", "stems": "vocals,drums", "output_format": "wav"},
        headers=env.auth,
    )
    assert answer.status_code == 200
    job = answer.json()
    assert job["status"] == "completed" and job["finished"] is True
    assert set(job["stems"]) == {"vocals", "drums"}
    assert job["audio"]["bpm"] == 120.0
    stem = await env.client.get(job["stems"]["vocals"]["download_url"], headers=env.auth)
    assert stem.status_code == 200
    assert stem.headers["content-type"] == "audio/wav"
    assert attachment_name(stem.headers["content-disposition"]) == "My Song - vocals.wav"
    assert frames(stem.content) == frames(song.read_bytes())
    signed = await env.client.get(job["stems"]["drums"]["url"])
    assert signed.status_code == 200 and signed.content == stem.content


async def test_without_wait_the_answer_is_202_with_a_location(
    env: BridgeEnv, tmp_path: Path
) -> None:
    env.controls.delay_s = 0.5
    song = write_test_tone(tmp_path / "song.wav")
    answer = await env.client.post(
        "/v1/split",
        content=song.read_bytes(),
        headers={**env.auth, "Content-Type": "audio/wav"},
        params={"filename": "song.wav", "output_format": "WAV"},
    )
    assert answer.status_code == 202
    location = answer.headers["location"]
    assert location == f"{env.url}/v1/jobs/{answer.json()['id']}"
    assert answer.json()["finished"] is False
    await env.hub.wait_for(answer.json()["id"], timeout=10)
    polled = await env.client.get(location, headers=env.auth)
    assert polled.json()["status"] == "completed"
    early = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "0.05"},
        headers=env.auth,
    )
    assert early.status_code == 202
    not_yet = await env.client.get(f"/v1/jobs/{early.json()['id']}/stems/vocals", headers=env.auth)
    assert not_yet.status_code == 409 and not_yet.json()["error"]["code"] == "CONFLICT"


async def test_json_url_source_and_streamed_zip(env: BridgeEnv, tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "remote.wav", seconds=1.5)
    async with run_receiver(files={"remote.wav": song}) as source:
        answer = await env.client.post(
            "/v1/split",
            json={
                "url": source.url + "/files/remote.wav",
                "stems": "FOUR_STEMS",
                "output_format": "WAV",
                "wait": 10,
            },
            headers=env.auth,
        )
    assert answer.status_code == 200, answer.text
    job = answer.json()
    archive = await env.client.get(job["zip_url"], headers=env.auth)
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        names = sorted(opened.namelist())
        assert names == sorted(f"remote - {s}.wav" for s in ("vocals", "drums", "bass", "other"))
        assert frames(opened.read("remote - bass.wav")) == frames(song.read_bytes())


async def test_callback_is_signed_with_standard_webhooks(
    env: BridgeEnv, receiver: Receiver, tmp_path: Path
) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    answer = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"callback_url": receiver.url + "/hook/done", "output_format": "WAV"},
        headers=env.auth,
    )
    assert answer.status_code == 202
    (post,) = await receiver.wait_for(1)
    secret = env.issued.webhook_secret
    official = standardwebhooks.Webhook(secret).verify(post.body, post.headers)
    mine = StandardWebhookReceiver(secret).verify(post.body, post.headers)
    assert official == mine
    assert mine["type"] == "job.completed"
    assert mine["data"]["id"] == answer.json()["id"]
    assert set(mine["data"]["stems"]) == {"vocals", "drums", "bass", "other"}
    assert post.headers["webhook-id"].startswith("msg_")


async def test_rest_hooks_subscribe_receive_and_unsubscribe(
    env: BridgeEnv, receiver: Receiver, tmp_path: Path
) -> None:
    created = await env.client.post(
        "/v1/hooks",
        json={"target_url": receiver.url + "/hook/zap", "events": ["job.completed"]},
        headers=env.auth,
    )
    assert created.status_code == 201
    hook = created.json()
    assert hook["active"] is True and hook["secret"].startswith("whsec_")
    listed = await env.client.get("/v1/hooks", headers=env.auth)
    assert [h["id"] for h in listed.json()["hooks"]] == [hook["id"]]
    assert listed.json()["hooks"][0]["secret"] is None

    song = write_test_tone(tmp_path / "song.wav")
    await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "10"},
        headers=env.auth,
    )
    (post,) = await receiver.wait_for(1)
    event = standardwebhooks.Webhook(hook["secret"]).verify(post.body, post.headers)
    assert event["type"] == "job.completed"

    gone = await env.client.delete(f"/v1/hooks/{hook['id']}", headers=env.auth)
    assert gone.status_code == 200 and gone.json() == {"deleted": True}
    again = await env.client.delete(f"/v1/hooks/{hook['id']}", headers=env.auth)
    assert again.status_code == 404
    await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "10"},
        headers=env.auth,
    )
    await env.bridge.outbox.deliver_due()
    assert len(receiver.posts) == 1


async def test_a_failing_hook_is_disabled_with_the_reason_shown(
    env: BridgeEnv, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.statuses = [410]
    created = await env.client.post(
        "/v1/hooks", json={"target_url": receiver.url + "/hook/old"}, headers=env.auth
    )
    hook_id = created.json()["id"]
    song = write_test_tone(tmp_path / "song.wav")
    await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "10"},
        headers=env.auth,
    )
    await receiver.wait_for(1)
    for _ in range(100):
        shown = (await env.client.get(f"/v1/hooks/{hook_id}", headers=env.auth)).json()
        if not shown["active"]:
            break
        await env.bridge.outbox.deliver_due()
    assert shown["active"] is False
    assert "410" in shown["disabled_reason"]
    assert shown["last_error"] == "HTTP 410"


async def test_failed_job_tells_the_callback_why(env: BridgeEnv, receiver: Receiver) -> None:
    answer = await env.client.post(
        "/v1/split",
        json={
            "url": receiver.url + "/files/missing.wav",
            "callback_url": receiver.url + "/hook/fail",
            "wait": 10,
        },
        headers=env.auth,
    )
    assert answer.status_code == 200
    job = answer.json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "SOURCE_UNREACHABLE"
    (post,) = await receiver.wait_for(1)
    body = json.loads(post.body)
    assert body["type"] == "job.failed" and body["data"]["error"]["code"] == "SOURCE_UNREACHABLE"


async def test_after_retention_both_dialects_say_expired_with_no_dead_links(
    env: BridgeEnv, tmp_path: Path
) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    answer = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "10", "stems": "BOTH"},
        headers=env.auth,
    )
    job_id = answer.json()["id"]
    await env.hub.wait_for(job_id, delivered=True, timeout=20)
    env.hub.settings.retention_hours = 1e-9
    assert await env.hub.cleanup_outputs() == 1
    v1 = (await env.client.get(f"/v1/jobs/{job_id}", headers=env.auth)).json()
    api = (await env.client.get(f"/api/v1/jobs/{job_id}", headers=env.auth)).json()
    assert v1["status"] == "expired" and v1["stems"] == {} and v1["zip_url"] is None
    assert v1["error"]["code"] == "JOB_EXPIRED"
    assert api["status"] == "EXPIRED" and "outputs" not in api
    assert "retention" in api["errorMessage"]
    stem = await env.client.get(f"/v1/jobs/{job_id}/stems/vocals", headers=env.auth)
    archive = await env.client.get(f"/v1/jobs/{job_id}/stems.zip", headers=env.auth)
    assert stem.status_code == 410 and archive.status_code == 410
    listed = await env.client.get("/api/v1/jobs?status=EXPIRED", headers=env.auth)
    assert listed.status_code == 200
