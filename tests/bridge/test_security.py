"""Refusals: SSRF targets, malformed bodies, forged upload links, bad webhook signatures."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from stemhub_n8n_bridge import StandardWebhookReceiver, StemSplitWebhookReceiver, WebhookRejected

from stemhub.outbox import MessageStatus, SigningScheme, new_secret, signature_headers
from stemhub.stemsplit_wire import sign_payload
from stemhub.testing import patience, write_test_tone
from tests.bridge.conftest import BridgeEnv, open_bridge

PRIVATE_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.7/hook",
    "http://localhost:8080/hook",
    "http://[::1]/hook",
    "http://167772161/hook",
    "http://192.168.1.1/hook",
]


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
async def test_ssrf_targets_are_refused_on_every_surface(env: BridgeEnv, target: str) -> None:
    attempts = [
        ("/api/v1/jobs", {"sourceUrl": target}),
        ("/api/v1/jobs", {"sourceUrl": "https://example.com/a.mp3", "callbackUrl": target}),
        ("/api/v1/webhooks", {"url": target}),
        ("/v1/split", {"url": target}),
        ("/v1/split", {"url": "https://example.com/a.mp3", "callback_url": target}),
        ("/v1/hooks", {"target_url": target}),
    ]
    for path, body in attempts:
        answer = await env.client.post(path, json=body, headers=env.auth)
        assert answer.status_code == 422, (path, body, answer.text)
        assert answer.json()["error"]["code"] == "SOURCE_FORBIDDEN"
    assert await env.hub.store.count_jobs() == 0
    assert await env.bridge.outbox.subscriptions() == []


async def test_a_name_that_resolves_to_a_private_address_is_refused_at_send_time(
    env: BridgeEnv, tmp_path: Path
) -> None:
    async def rebinding_dns(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    env.bridge.outbox.resolver = rebinding_dns
    created = await env.client.post(
        "/v1/hooks", json={"target_url": "https://hooks.attacker.example/x"}, headers=env.auth
    )
    assert created.status_code == 201
    song = write_test_tone(tmp_path / "song.wav")
    made = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        headers=env.auth,
    )
    await env.hub.wait_for(made.json()["id"], timeout=10)
    (message,) = await env.bridge.outbox.messages()
    # the bridge's own outbox worker may hold the message's lease: wait for the outcome
    for _ in range(int(patience(10) / 0.05)):
        await env.bridge.outbox.deliver_due()
        message = (await env.bridge.outbox.messages())[0]
        if message.status is not MessageStatus.PENDING:
            break
        await asyncio.sleep(0.05)
    assert message.status is MessageStatus.FAILED
    hook = (await env.client.get(f"/v1/hooks/{created.json()['id']}", headers=env.auth)).json()
    assert hook["active"] is False and "refused" in hook["disabled_reason"]


MALFORMED = [
    ("POST", "/api/v1/upload", {"content": b"{not json"}),
    ("POST", "/api/v1/upload", {"content": b"[1, 2]"}),
    ("POST", "/api/v1/upload", {"json": {"filename": 12}}),
    ("POST", "/api/v1/upload", {"json": {"filename": ""}}),
    ("POST", "/api/v1/jobs", {"content": b"\xff\xfe\x00"}),
    ("POST", "/api/v1/jobs", {"json": {}}),
    ("POST", "/api/v1/jobs", {"json": {"uploadKey": "upl_x", "sourceUrl": "https://a.b/c"}}),
    ("POST", "/api/v1/jobs", {"json": {"uploadKey": "upl_unknown"}}),
    ("POST", "/api/v1/jobs", {"json": {"sourceUrl": "ftp://a.b/c.mp3"}}),
    ("POST", "/api/v1/jobs", {"json": {"sourceUrl": "https://a.b/c", "quality": "ULTRA"}}),
    ("POST", "/api/v1/jobs", {"json": {"sourceUrl": "https://a.b/c", "metadata": [1]}}),
    ("POST", "/api/v1/jobs", {"json": {"sourceUrl": "not a url at all"}}),
    ("GET", "/api/v1/jobs?limit=0", {}),
    ("GET", "/api/v1/jobs?limit=abc", {}),
    ("GET", "/api/v1/jobs/..%2F..%2Fetc", {}),
    ("POST", "/api/v1/webhooks", {"json": {"url": "https://a.b/c", "events": ["job.exploded"]}}),
    ("POST", "/api/v1/webhooks", {"json": {"url": "https://a.b/c", "events": "job.failed"}}),
    ("DELETE", "/api/v1/webhooks/nope", {}),
    ("POST", "/v1/split", {"content": b"{", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/v1/split", {"json": {"stems": "vocals"}}),
    ("POST", "/v1/split", {"json": {"url": "https://a.b/c", "stems": "kazoo"}}),
    ("POST", "/v1/split", {"json": {"url": "https://a.b/c", "wait": -1}}),
    ("POST", "/v1/split", {"json": {"url": "https://a.b/c", "output_format": "OGG"}}),
    ("POST", "/v1/split", {"content": b"hello", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/v1/split", {"content": b"", "headers": {"Content-Type": "audio/mpeg"}}),
    (
        "POST",
        "/v1/split",
        {
            "content": b"--x\r\nbroken",
            "headers": {"Content-Type": "multipart/form-data; boundary=x"},
        },
    ),
    ("POST", "/v1/split", {"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}}),
    (
        "POST",
        "/v1/split",
        {"data": {"stems": "vocals"}, "files": {"f": ("a.wav", b"", "audio/wav")}},
    ),
    (
        "POST",
        "/v1/split",
        {"files": {"f": ("a.txt", b"not audio at all", "text/plain")}, "data": {"metadata": "{"}},
    ),
    ("POST", "/v1/hooks", {"json": {"events": ["job.completed"]}}),
    ("POST", "/v1/hooks", {"json": {"target_url": "https://a.b/c", "events": []}}),
    ("GET", "/v1/jobs/abc/stems/vocals", {}),
    ("GET", "/v1/jobs/abc/stems.zip", {}),
    ("GET", "/v1/jobs?status=sleeping", {}),
    ("DELETE", "/v1/hooks/hook_nope", {}),
]


async def test_malformed_requests_get_4xx_never_5xx(env: BridgeEnv) -> None:
    for method, path, options in MALFORMED:
        headers = {**env.auth, **options.pop("headers", {})}  # type: ignore[dict-item]
        answer = await env.client.request(method, path, headers=headers, **options)  # type: ignore[arg-type]
        assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text)
        if path.startswith(("/api/v1/jobs/..",)):
            continue  # the router's own 404: no route matches a path with a slash in the id
        assert set(answer.json()["error"]) >= {"code", "message"}, (method, path)


async def test_a_body_over_the_cap_is_refused_while_streaming(tmp_path: Path) -> None:
    async with open_bridge(tmp_path / "hub", max_upload_bytes=100_000) as env:
        ticket = await env.client.post(
            "/api/v1/upload", json={"filename": "big.wav"}, headers=env.auth
        )
        url = ticket.json()["uploadUrl"]

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(20):
                yield b"\0" * 10_000

        streamed = await env.client.put(url, content=chunks())
        declared = await env.client.put(url, content=b"\0" * 200_000)
        form = await env.client.post(
            "/v1/split",
            files={"file": ("big.wav", b"\0" * 200_000, "audio/wav")},
            headers=env.auth,
        )
        folder = env.bridge.uploads.folder
        assert [p for p in folder.iterdir()] == []
    assert streamed.status_code == 400 and streamed.json()["error"]["code"] == "FILE_TOO_LARGE"
    assert declared.status_code == 400
    assert form.status_code == 413 and form.json()["error"]["code"] == "FILE_TOO_LARGE"


async def test_forged_and_expired_upload_links_are_refused(env: BridgeEnv) -> None:
    ticket = await env.client.post("/api/v1/upload", json={"filename": "a.wav"}, headers=env.auth)
    url = httpx.URL(ticket.json()["uploadUrl"])
    forged = url.copy_set_param("signature", "A" * 43)
    longer = url.copy_set_param("expires", str(int(url.params["expires"]) + 3600))
    other_key = url.copy_with(path=url.path.replace("upl_", "upl_0"))
    for bad in (forged, longer, other_key):
        answer = await env.client.put(bad, content=b"RIFF")
        assert answer.status_code == 403, bad
    env.bridge.uploads.ttl_s = -10
    expired = await env.client.post("/api/v1/upload", json={"filename": "a.wav"}, headers=env.auth)
    late = await env.client.put(expired.json()["uploadUrl"], content=b"RIFF")
    assert late.status_code == 403 and "expired" in late.json()["error"]["message"]


def test_standard_receiver_rejects_forged_stale_and_replayed() -> None:
    secret = new_secret()
    body = json.dumps({"type": "job.completed", "data": {"id": "j1"}}).encode()
    now = time.time()
    receiver = StandardWebhookReceiver(secret, clock=lambda: now)
    good = signature_headers(SigningScheme.STANDARD, secret, "msg_1", "job.completed", body, now)
    assert receiver.verify(body, good)["data"] == {"id": "j1"}

    def reason(payload: bytes, headers: dict[str, str]) -> str:
        with pytest.raises(WebhookRejected) as caught:
            receiver.verify(payload, headers)
        return caught.value.reason

    assert reason(body, good) == "replayed"
    tampered = body.replace(b"j1", b"j2")
    fresh = signature_headers(SigningScheme.STANDARD, secret, "msg_2", "job.completed", body, now)
    assert reason(tampered, fresh) == "forged"
    other_secret = signature_headers(
        SigningScheme.STANDARD, new_secret(), "msg_3", "job.completed", body, now
    )
    assert reason(body, other_secret) == "forged"
    old = signature_headers(
        SigningScheme.STANDARD, secret, "msg_4", "job.completed", body, now - 600
    )
    assert reason(body, old) == "stale"
    moved = {**old, "webhook-timestamp": str(int(now))}
    assert reason(body, moved) == "forged"
    assert reason(body, {}) == "malformed"


def test_stemsplit_receiver_rejects_forged_stale_and_replayed() -> None:
    secret = new_secret()
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    event = {"id": "evt_1", "event": "job.failed", "timestamp": stamp, "data": {}}
    body = json.dumps(event).encode()
    headers = {"X-Webhook-Signature": sign_payload(body, secret), "X-Webhook-Id": "msg_1"}
    receiver = StemSplitWebhookReceiver(secret, clock=lambda: now)
    assert receiver.verify(body, headers)["event"] == "job.failed"
    for replay in (
        headers,
        {**headers, "X-Webhook-Id": "msg_other"},
        {"X-Webhook-Signature": headers["X-Webhook-Signature"]},
    ):
        with pytest.raises(WebhookRejected) as replayed:
            receiver.verify(body, replay)
        assert replayed.value.reason == "replayed", "the header id is not what counts"
    with pytest.raises(WebhookRejected) as forged:
        receiver.verify(body + b" ", {**headers, "X-Webhook-Id": "msg_2"})
    assert forged.value.reason == "forged"
    a_day_later = StemSplitWebhookReceiver(secret, clock=lambda: now + 25 * 3600)
    assert a_day_later.verify(body, headers)["id"] == "evt_1", "a retry within the window"
    two_days_later = StemSplitWebhookReceiver(secret, clock=lambda: now + 48 * 3600)
    with pytest.raises(WebhookRejected) as stale:
        two_days_later.verify(body, headers)
    assert stale.value.reason == "stale"
    undated = json.dumps({"id": "evt_2", "event": "job.failed", "data": {}}).encode()
    with pytest.raises(WebhookRejected) as malformed:
        receiver.verify(undated, {"X-Webhook-Signature": sign_payload(undated, secret)})
    assert malformed.value.reason == "malformed"


def test_a_retry_of_a_delivery_the_application_failed_to_process_gets_through() -> None:
    secret = new_secret()
    body = json.dumps({"type": "job.completed", "data": {"id": "j1"}}).encode()
    now = time.time()
    receiver = StandardWebhookReceiver(secret, clock=lambda: now)
    attempt = signature_headers(SigningScheme.STANDARD, secret, "msg_9", "job.completed", body, now)
    with pytest.raises(RuntimeError), receiver.handle(body, attempt):
        raise RuntimeError("the database was down")
    retry = signature_headers(
        SigningScheme.STANDARD, secret, "msg_9", "job.completed", body, now + 5
    )
    with receiver.handle(body, retry) as event:
        assert event["data"] == {"id": "j1"}
    with pytest.raises(WebhookRejected) as replayed, receiver.handle(body, retry):
        pass
    assert replayed.value.reason == "replayed"
