"""The StemSplit-compatible surface, over real HTTP: by hand and with the official SDK."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import soundfile
import stemsplit_python
from stemhub_n8n_bridge import StemSplitWebhookReceiver
from stemsplit_python import webhooks as sdk_webhooks

from stemhub.stemsplit_wire import verify_signature
from stemhub.testing import write_test_tone
from tests.bridge.conftest import BridgeEnv, Receiver, open_bridge


def decode(data: bytes) -> tuple[int, int]:
    audio, rate = soundfile.read(io.BytesIO(data), always_2d=True)
    return rate, audio.shape[0]


async def test_upload_job_webhook_and_stems_end_to_end(
    env: BridgeEnv, receiver: Receiver, tmp_path: Path
) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    hook = await env.client.post(
        "/api/v1/webhooks", json={"url": receiver.url + "/hook/sub"}, headers=env.auth
    )
    assert hook.status_code == 201
    secret = hook.json()["secret"]
    ticket = await env.client.post(
        "/api/v1/upload",
        json={"filename": "song.wav", "contentType": "audio/wav"},
        headers=env.auth,
    )
    assert ticket.status_code == 200
    assert ticket.headers["x-ratelimit-limit"] == "60"
    put = await env.client.put(ticket.json()["uploadUrl"], content=song.read_bytes())
    assert put.status_code == 200
    created = await env.client.post(
        "/api/v1/jobs",
        json={
            "uploadKey": ticket.json()["uploadKey"],
            "outputType": "FOUR_STEMS",
            "outputFormat": "WAV",
            "metadata": {"track": 7},
            "callbackUrl": receiver.url + "/hook/callback",
        },
        headers=env.auth,
    )
    assert created.status_code == 201
    job_id = created.json()["id"]
    assert created.json()["status"] in ("PENDING", "PROCESSING")

    posts = await receiver.wait_for(2)
    by_path = {post.path: post for post in posts}
    callback_secret = env.issued.webhook_secret
    callback = by_path["/hook/callback"]
    assert verify_signature(callback.body, callback.headers["x-webhook-signature"], callback_secret)
    event = sdk_webhooks.verify_and_parse(
        payload=by_path["/hook/sub"].body,
        signature=by_path["/hook/sub"].headers["x-webhook-signature"],
        secret=secret,
    )
    assert event.event == "job.completed"
    assert event.data.job_id == job_id and event.data.status == "COMPLETED"
    assert StemSplitWebhookReceiver(callback_secret).verify(callback.body, callback.headers)

    job = (await env.client.get(f"/api/v1/jobs/{job_id}", headers=env.auth)).json()
    assert job["status"] == "COMPLETED" and job["progress"] == 100
    assert job["audioMetadata"] == {"bpm": 120.0, "key": "A minor"}
    assert job["metadata"] == {"track": 7}
    assert set(job["outputs"]) == {"vocals", "drums", "bass", "other"}
    vocals = await env.client.get(job["outputs"]["vocals"]["url"])
    assert vocals.status_code == 200
    assert decode(vocals.content) == decode(song.read_bytes())


def _sdk_flow(base_url: str, token: str, song: Path, out: Path) -> dict[str, object]:
    with stemsplit_python.StemSplit(api_key=token, base_url=base_url + "/api/v1") as client:
        hook = client.webhooks.create(url="https://hooks.example.com/stems")
        handle = client.jobs.create(
            audio=song, output_type="BOTH", output_format="WAV", idempotency_key="run-1"
        )
        again = client.jobs.create(
            audio=song, output_type="BOTH", output_format="WAV", idempotency_key="run-1"
        )
        final = handle.wait(timeout=20, poll_interval=0.1)
        files = handle.download_all(out)
        listed = client.jobs.list(status="COMPLETED", limit=5)
        return {
            "id": final.id,
            "again": again.id,
            "status": final.status,
            "bpm": final.audio_metadata.bpm if final.audio_metadata else None,
            "files": files,
            "listed": [h.id for h in listed],
            "balance": client.account.balance().balance_seconds,
            "hooks": [h.id for h in client.webhooks.list()],
            "hook": hook.id,
            "secret": hook.secret,
            "deleted": client.webhooks.delete(hook.id),
            "rate": client.last_rate_limit,
        }


async def test_the_official_sdk_runs_against_the_bridge(env: BridgeEnv, tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "song.wav", seconds=2.0)
    result = await asyncio.to_thread(_sdk_flow, env.url, env.token, song, tmp_path / "out")
    assert result["status"] == "COMPLETED"
    assert result["again"] == result["id"]
    assert result["bpm"] == 120.0
    files = result["files"]
    assert isinstance(files, dict) and set(files) == {"vocals", "instrumental"}
    assert files["vocals"].suffix == ".wav"
    assert decode(files["vocals"].read_bytes()) == decode(song.read_bytes())
    assert result["listed"] == [result["id"]]
    assert isinstance(result["balance"], int) and result["balance"] > 0
    assert result["hooks"] == [result["hook"]]
    assert str(result["secret"]).startswith("whsec_")
    assert result["deleted"] is True
    rate = result["rate"]
    assert rate is not None and rate.limit == 60


def _sdk_errors(base_url: str, token: str) -> list[str]:
    seen: list[str] = []
    with stemsplit_python.StemSplit(api_key=token, base_url=base_url, max_retries=0) as client:
        try:
            client.jobs.get("0123456789abcdef")
        except stemsplit_python.NotFoundError as error:
            seen.append(f"404 {error.code}")
        try:
            client.jobs.create(source_url="https://example.com/a.mp3", output_type="NINE_STEMS")
        except stemsplit_python.BadRequestError as error:
            seen.append(f"400 {error.code}")
    with stemsplit_python.StemSplit(api_key="sk_live_nope", base_url=base_url) as client:
        try:
            client.account.balance()
        except stemsplit_python.AuthenticationError as error:
            seen.append(f"401 {error.code}")
    return seen


async def test_errors_reach_the_sdk_as_its_exception_classes(env: BridgeEnv) -> None:
    seen = await asyncio.to_thread(_sdk_errors, env.url + "/api/v1", env.token)
    assert seen == ["404 JOB_NOT_FOUND", "400 INVALID_REQUEST", "401 INVALID_API_KEY"]


async def test_auth_envelopes_and_revocation(env: BridgeEnv) -> None:
    missing = await env.client.get("/api/v1/jobs")
    assert missing.status_code == 401
    assert missing.json() == {
        "error": {"code": "MISSING_API_KEY", "message": missing.json()["error"]["message"]}
    }
    by_header = await env.client.get("/api/v1/jobs", headers={"X-API-Key": env.token})
    assert by_header.status_code == 200
    forged = env.token[:-4] + "AAAA"
    bad = await env.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "INVALID_API_KEY"
    await env.bridge.keys.revoke(env.issued.key.id)
    revoked = await env.client.get("/api/v1/jobs", headers=env.auth)
    assert revoked.status_code == 403 and revoked.json()["error"]["code"] == "API_KEY_REVOKED"
    v1 = await env.client.get("/v1/jobs", headers=env.auth)
    assert v1.status_code == 403 and v1.json()["error"]["code"] == "FORBIDDEN"


async def test_jobs_of_other_keys_are_invisible(env: BridgeEnv, tmp_path: Path) -> None:
    other = await env.bridge.keys.create("someone else")
    song = write_test_tone(tmp_path / "song.wav")
    made = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        headers=env.auth,
    )
    job_id = made.json()["id"]
    theirs = {"Authorization": f"Bearer {other.token}"}
    assert (await env.client.get(f"/api/v1/jobs/{job_id}", headers=theirs)).status_code == 404
    assert (await env.client.get(f"/v1/jobs/{job_id}", headers=theirs)).status_code == 404
    listed = await env.client.get("/api/v1/jobs", headers=theirs)
    assert listed.json()["jobs"] == [] and listed.json()["pagination"]["total"] == 0


async def test_rate_limit_headers_and_429(tmp_path: Path) -> None:
    async with open_bridge(
        tmp_path / "hub", env={"STEMHUB_N8N_BRIDGE_RATE_LIMIT": "3/minute"}
    ) as env:
        answers = [await env.client.get("/api/v1/balance", headers=env.auth) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert int(refused.headers["x-ratelimit-reset"]) >= int(answers[0].headers["x-ratelimit-reset"])


async def test_per_key_job_quota_is_enforced(env: BridgeEnv) -> None:
    limited = await env.bridge.keys.create("one a day", quota="1/day")
    auth = {"X-API-Key": limited.token}
    first = await env.client.post(
        "/api/v1/jobs", json={"sourceUrl": "https://example.com/a.mp3"}, headers=auth
    )
    second = await env.client.post(
        "/api/v1/jobs", json={"sourceUrl": "https://example.com/b.mp3"}, headers=auth
    )
    assert first.status_code == 201
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(second.headers["retry-after"]) > 3600


async def test_pagination_and_status_filter(env: BridgeEnv, tmp_path: Path) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    ids = []
    for _ in range(3):
        made = await env.client.post(
            "/v1/split",
            files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
            data={"wait": "10"},
            headers=env.auth,
        )
        ids.append(made.json()["id"])
    page = await env.client.get("/api/v1/jobs?limit=2&offset=0", headers=env.auth)
    rest = await env.client.get("/api/v1/jobs?limit=2&offset=2", headers=env.auth)
    assert page.json()["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}
    assert rest.json()["pagination"]["hasMore"] is False
    seen = [j["id"] for j in page.json()["jobs"] + rest.json()["jobs"]]
    assert sorted(seen) == sorted(ids)
    failed = await env.client.get("/api/v1/jobs?status=FAILED", headers=env.auth)
    assert failed.json()["jobs"] == []
    wrong = await env.client.get("/api/v1/jobs?status=DONE", headers=env.auth)
    assert wrong.status_code == 400


async def test_failed_jobs_report_failed_with_the_reason(
    env: BridgeEnv, receiver: Receiver
) -> None:
    created = await env.client.post(
        "/api/v1/jobs",
        json={
            "sourceUrl": receiver.url + "/files/none.wav",
            "callbackUrl": receiver.url + "/hook/x",
        },
        headers=env.auth,
    )
    assert created.status_code == 201
    posts = await receiver.wait_for(1)
    event = json.loads(posts[0].body)
    assert event["event"] == "job.failed"
    assert event["data"]["status"] == "FAILED" and event["data"]["errorMessage"]
    job = (await env.client.get(f"/api/v1/jobs/{created.json()['id']}", headers=env.auth)).json()
    assert job["status"] == "FAILED" and "outputs" not in job
