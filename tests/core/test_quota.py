"""Quotas and cooldowns live in the store: they hold across a hub restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from stemhub.config import QuotaSettings
from stemhub.errors import ErrorCode, RequestRejected
from stemhub.models import JobRequest, Origin, Source, SourceKind
from stemhub.quota import humanize_wait, parse_limit
from stemhub.testing import FakeBackendControls, make_settings, open_test_hub


def request_from(path: Path, user: str, guild: str = "g1") -> JobRequest:
    return JobRequest(
        source=Source(kind=SourceKind.FILE, path=str(path)),
        origin=Origin(platform="discord", user_id=user, guild_id=guild),
    )


async def test_user_quota_survives_a_restart(tmp_path: Path, stemhub_audio_file: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        default_backend="fake",
        quota=QuotaSettings(per_user="2/hour", per_guild=None, per_api_key=None),
    )
    controls = FakeBackendControls()
    async with open_test_hub(settings, controls) as hub:
        await hub.submit(request_from(stemhub_audio_file, "alice"))
        await hub.submit(request_from(stemhub_audio_file, "alice"))
        with pytest.raises(RequestRejected) as first_refusal:
            await hub.submit(request_from(stemhub_audio_file, "alice"))
    assert first_refusal.value.code is ErrorCode.QUOTA_EXCEEDED

    async with open_test_hub(settings, controls) as hub:
        with pytest.raises(RequestRejected) as caught:
            await hub.submit(request_from(stemhub_audio_file, "alice"))
        await hub.submit(request_from(stemhub_audio_file, "bob"))
    error = caught.value
    assert error.code is ErrorCode.QUOTA_EXCEEDED
    assert error.retry_after is not None and 3500 < error.retry_after <= 3600
    assert "try again in 60 minutes" in error.message
    assert error.details["scope"] == "user"


async def test_guild_quota_counts_every_member(tmp_path: Path, stemhub_audio_file: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        default_backend="fake",
        quota=QuotaSettings(per_user=None, per_guild="3/day", per_api_key=None),
    )
    async with open_test_hub(settings, FakeBackendControls()) as hub:
        for user in ("a", "b", "c"):
            await hub.submit(request_from(stemhub_audio_file, user))
        with pytest.raises(RequestRejected, match="This server has used all 3 splits"):
            await hub.submit(request_from(stemhub_audio_file, "d"))
        await hub.submit(request_from(stemhub_audio_file, "d", guild="other"))


async def test_cooldown_between_requests(tmp_path: Path, stemhub_audio_file: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        default_backend="fake",
        quota=QuotaSettings(per_user=None, per_guild=None, per_api_key=None, user_cooldown_s=30),
    )
    async with open_test_hub(settings, FakeBackendControls()) as hub:
        await hub.submit(request_from(stemhub_audio_file, "alice"))
        with pytest.raises(RequestRejected, match="split again in 30 seconds"):
            await hub.submit(request_from(stemhub_audio_file, "alice"))


def test_limit_parsing() -> None:
    assert parse_limit("20/hour") == (20, 3600)
    assert parse_limit("5/10minutes") == (5, 600)
    assert parse_limit("3 / day") == (3, 86400)
    with pytest.raises(ValueError, match="COUNT/PERIOD"):
        parse_limit("lots")
    assert humanize_wait(1) == "1 second"
    assert humanize_wait(61) == "2 minutes"
