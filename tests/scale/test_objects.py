"""Inputs and stems in shared storage: the output folder (default) or an S3 bucket.

The S3 cases run against moto's S3 API server on loopback (its multipart rules, such as
the 5 MiB minimum part, are the service's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from stemhub.cluster.attach import object_remover
from stemhub.cluster.objects import (
    FolderObjects,
    ObjectStore,
    S3Objects,
    input_key,
    open_object_store,
    stem_key,
)
from stemhub.cluster.proxy import QueuedBackend
from stemhub.config import Settings
from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import JobStatus, Origin, Stage
from stemhub.testing import make_settings
from tests.scale._cluster import cluster_hub, file_request


def s3_objects(s3: Any, tmp_path: Path) -> S3Objects:
    settings = make_settings(tmp_path / "s3-settings", **s3.settings())
    objects = open_object_store(settings)
    assert isinstance(objects, S3Objects)
    return objects


@pytest.fixture(params=["folder", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "folder":
        return open_object_store(make_settings(tmp_path / "data"))
    return s3_objects(request.getfixturevalue("s3"), tmp_path)


async def test_a_file_goes_up_and_comes_back_byte_for_byte(
    objects: ObjectStore, tmp_path: Path
) -> None:
    original = tmp_path / "song.wav"
    original.write_bytes(os.urandom(12 * 1024 * 1024 + 123))  # three multipart parts
    key = input_key("job1", "../../etc/song.wav")
    assert key == "inputs/job1/song.wav"

    assert await objects.upload(key, original) == original.stat().st_size
    assert await objects.exists(key)
    back = tmp_path / "back" / "song.wav"
    assert await objects.download(key, back) == original.stat().st_size
    assert back.read_bytes() == original.read_bytes()

    await objects.delete(key)
    assert not await objects.exists(key)
    with pytest.raises(StemhubError) as missing:
        await objects.download(key, tmp_path / "gone.wav")
    assert missing.value.code is ErrorCode.NOT_FOUND
    assert not (tmp_path / "gone.wav").exists()


async def test_keys_cannot_leave_the_store(objects: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "x.wav"
    source.write_bytes(b"RIFF")
    for key in ("../outside.wav", "/abs.wav", "a//b.wav", "a/./b.wav"):
        with pytest.raises(StemhubError) as refused:
            await objects.upload(key, source)
        assert refused.value.code is ErrorCode.NOT_FOUND
    assert not (tmp_path / "outside.wav").exists()


async def test_s3_uploads_are_multipart_and_links_are_presigned(s3: Any, tmp_path: Path) -> None:
    objects = s3_objects(s3, tmp_path)
    stem = tmp_path / "vocals.wav"
    stem.write_bytes(os.urandom(11 * 1024 * 1024))
    key = stem_key("job2", "vocals.wav")
    await objects.upload(key, stem)

    head = s3.client().head_object(Bucket=s3.bucket, Key=f"stemhub/{key}")
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB parts

    url, expires = await objects.link(key, 600)
    async with httpx.AsyncClient() as client:
        fetched = await client.get(url)
        assert fetched.status_code == 200 and fetched.content == stem.read_bytes()
    # moto does not check SigV4 on GETs, so the test reads the signature's parameters
    query = httpx.URL(url).params
    assert query["X-Amz-Expires"] == "600" and query["X-Amz-Signature"]
    assert s3.secret_key not in url
    assert expires.tzinfo is not None


def test_the_folder_is_the_default_and_s3_needs_a_bucket_url(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    folder = open_object_store(settings)
    assert isinstance(folder, FolderObjects) and folder.root == settings.resolved_output_dir
    assert folder.local_path(stem_key("abc", "vocals.wav")) == (
        settings.resolved_output_dir / "abc" / "vocals.wav"
    )
    with pytest.raises(StemhubError) as wrong:
        open_object_store(make_settings(tmp_path / "d2", object_store_url="https://bucket/x"))
    assert wrong.value.code is ErrorCode.CONFIG_MISSING
    assert "STEMHUB_OBJECT_STORE_URL" in wrong.value.message


async def test_objects_of_an_undelivered_job_are_kept_whatever_their_age(
    s3: Any, tmp_path: Path, stemhub_audio_file: Path
) -> None:
    """Retention removes only what was delivered; a job waiting for delivery keeps all."""
    hub, _controls, _events = cluster_hub(
        tmp_path / "hub", database_url=f"sqlite:///{tmp_path / 'hub.db'}", broker_url=None
    )
    objects = s3_objects(s3, tmp_path)
    async with hub:
        delivered = await hub.submit(file_request(stemhub_audio_file))
        waiting = await hub.submit(
            file_request(stemhub_audio_file, origin=Origin(platform="discord", user_id="ada"))
        )
        delivered = await hub.wait_for(delivered.id, timeout=30)
        waiting = await hub.wait_for(waiting.id, delivered=False, timeout=30)
        assert delivered.delivered_at is not None
        assert waiting.status is JobStatus.COMPLETED and waiting.stage is Stage.DELIVER
        for job in (delivered, waiting):
            await objects.upload(stem_key(job.id, "vocals.wav"), stemhub_audio_file)
            await objects.upload(input_key(job.id, "tone.wav"), stemhub_audio_file)

        hub.add_output_remover(object_remover(objects))
        hub.settings.retention_hours = 1e-9
        removed = await hub.cleanup_outputs()
        expired = await hub.require_job(delivered.id)

    assert removed == 1
    assert expired.status is JobStatus.EXPIRED
    assert s3.keys() == [
        f"stemhub/{waiting.id}/vocals.wav",
        f"stemhub/inputs/{waiting.id}/tone.wav",
    ]


async def test_without_a_broker_nothing_changes(tmp_path: Path, stemhub_audio_file: Path) -> None:
    hub, controls, _events = cluster_hub(
        tmp_path / "hub", database_url=f"sqlite:///{tmp_path / 'hub.db'}", broker_url=None
    )
    async with hub:
        assert not isinstance(hub.backend("fake"), QueuedBackend)
        job = await hub.submit(file_request(stemhub_audio_file))
        done = await hub.wait_for(job.id, timeout=30)
    assert done.status is JobStatus.COMPLETED
    assert len(controls.started) == 1  # separated in this process
    assert Settings.model_fields["broker_url"].default is None


async def test_with_a_broker_every_backend_is_a_queue_proxy(rabbitmq: str, tmp_path: Path) -> None:
    hub, _controls, _events = cluster_hub(
        tmp_path / "hub", database_url=f"sqlite:///{tmp_path / 'hub.db'}", broker_url=rabbitmq
    )
    async with hub:
        proxy = hub.backend("fake")
        assert isinstance(proxy, QueuedBackend)
        assert proxy.capabilities.resumable  # a restarted hub waits on the same task
        assert proxy.queue == "cpu"
        assert isinstance(hub.backend("local"), QueuedBackend)
