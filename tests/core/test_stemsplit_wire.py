"""The StemSplit wire format: statuses, forward compatibility, signatures, secrets."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from stemhub.stemsplit_wire import (
    REVEAL_SECRETS,
    CreateJobRequest,
    RemoteJob,
    RemoteStatus,
    Webhook,
    WebhookEvent,
    error_envelope,
    normalize_status,
    parse_rate_limit,
    sign_payload,
    verify_signature,
)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("PENDING", RemoteStatus.PENDING),
        ("PROCESSING", RemoteStatus.PROCESSING),
        ("COMPLETED", RemoteStatus.COMPLETED),
        ("FAILED", RemoteStatus.FAILED),
        ("EXPIRED", RemoteStatus.EXPIRED),
        ("queued", RemoteStatus.PENDING),
        ("processing", RemoteStatus.PROCESSING),
        ("completed", RemoteStatus.COMPLETED),
        ("succeeded", RemoteStatus.COMPLETED),
        ("failed", RemoteStatus.FAILED),
        ("in-progress", RemoteStatus.PROCESSING),
        ("UPLOADING_TO_GPU", RemoteStatus.PROCESSING),
        ("", RemoteStatus.PROCESSING),
    ],
)
def test_statuses_of_both_dialects_normalise_and_unknown_ones_mean_running(
    word: str, expected: RemoteStatus
) -> None:
    assert normalize_status(word) is expected
    assert RemoteJob.model_validate({"id": "j", "status": word}).status is expected


def test_a_job_from_a_newer_server_keeps_unknown_fields_and_the_raw_status() -> None:
    body = {
        "id": "clx1",
        "status": "WARMING_UP",
        "progress": 12,
        "outputs": None,
        "gpuModel": "H200",
        "audioMetadata": {"bpm": 128, "key": "F# minor", "loudness": -9.5},
    }
    job = RemoteJob.model_validate(body)
    assert job.status is RemoteStatus.PROCESSING
    assert job.raw_status == "WARMING_UP"
    assert job.model_extra == {"gpuModel": "H200"}
    assert job.audio_metadata is not None and job.audio_metadata.bpm == 128
    wire = job.to_wire()
    assert wire["gpuModel"] == "H200"
    assert wire["audioMetadata"]["loudness"] == -9.5
    assert "rawStatus" not in wire


def test_outputs_accept_the_older_plain_url_shape_and_name_stems_in_snake_case() -> None:
    job = RemoteJob.model_validate(
        {
            "id": "j",
            "status": "completed",
            "outputs": {
                "vocals": "https://cdn/v.mp3",
                "fullAudio": {"url": "https://cdn/f.mp3", "expiresAt": "2030-01-01T00:00:00Z"},
                "drums": None,
            },
        }
    )
    outputs = job.stem_outputs()
    assert set(outputs) == {"vocals", "full_audio"}
    assert outputs["vocals"].url == "https://cdn/v.mp3"
    assert outputs["full_audio"].expires_at is not None


def test_requests_serialise_camel_case_without_nulls() -> None:
    body = CreateJobRequest(upload_key="uploads/a/x.wav", output_type="BOTH", file_name="x.wav")
    assert body.to_wire() == {
        "uploadKey": "uploads/a/x.wav",
        "outputType": "BOTH",
        "fileName": "x.wav",
    }


def test_error_envelope_shape() -> None:
    body = error_envelope("INSUFFICIENT_CREDITS", "Not enough.", required_seconds=200)
    assert body == {
        "error": {"code": "INSUFFICIENT_CREDITS", "message": "Not enough.", "requiredSeconds": 200}
    }


def test_signatures_verify_the_raw_body_only() -> None:
    body = json.dumps({"event": "job.completed", "data": {"jobId": "j"}}).encode()
    signature = sign_payload(body, "whsec_one")
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_signature(body, signature, "whsec_one")
    assert verify_signature(body, signature.removeprefix("sha256="), SecretStr("whsec_one"))
    assert verify_signature(body, signature.upper().replace("SHA256=", "sha256="), "whsec_one")
    assert not verify_signature(body + b" ", signature, "whsec_one")
    reserialised = json.dumps(json.loads(body), indent=1).encode()
    assert not verify_signature(reserialised, signature, "whsec_one")
    assert not verify_signature(body, signature, "whsec_two")
    assert not verify_signature(body, None, "whsec_one")
    assert not verify_signature(body, "sha256=zz\u00e9", "whsec_one")


def test_webhook_secret_never_shows_unless_asked_for() -> None:
    hook = Webhook.model_validate(
        {"id": "wh", "url": "https://hub/hooks", "events": ["job.completed"], "secret": "whsec_x"}
    )
    assert "whsec_x" not in repr(hook)
    assert "whsec_x" not in json.dumps(hook.to_wire())
    assert hook.to_wire(**{REVEAL_SECRETS: True})["secret"] == "whsec_x"


def test_webhook_event_parses_the_delivery_envelope() -> None:
    event = WebhookEvent.model_validate(
        {
            "event": "job.completed",
            "timestamp": "2030-01-01T00:00:00Z",
            "data": {
                "jobId": "j1",
                "status": "COMPLETED",
                "type": "youtube",
                "outputs": {"vocals": {"url": "u", "expiresAt": "2030-01-01T01:00:00Z"}},
                "somethingNew": True,
            },
        }
    )
    assert event.data.job_id == "j1"
    assert event.data.status is RemoteStatus.COMPLETED
    assert event.data.outputs["vocals"].url == "u"
    assert event.data.model_extra == {"somethingNew": True}


def test_rate_limit_headers_and_both_reset_styles() -> None:
    info = parse_rate_limit(
        {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000030"}
    )
    assert (info.limit, info.remaining) == (60, 0)
    assert info.reset_in(1_700_000_000.0) == pytest.approx(30.0)
    assert parse_rate_limit({"x-ratelimit-reset": "12"}).reset_in(1_700_000_000.0) == 12.0
    assert parse_rate_limit({"retry-after": "2.5"}).retry_after == 2.5
    assert parse_rate_limit({"retry-after": "soon"}).retry_after is None
