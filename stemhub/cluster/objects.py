"""Where inputs and stems live when hubs and workers share them: a folder or an S3 bucket.

Keys are the only thing the broker carries: ``inputs/<job id>/<file name>`` for the audio a
hub received, ``<job id>/<stem>.<ext>`` for stems (the layout of the hub's output folder,
so the local store *is* that folder and the hub's signed ``/files`` links keep working).

The S3 store is obstore (Rust ``object_store`` behind an asyncio API): uploads are multipart
and read the file from disk in 1 MiB pieces into one part at a time (5 MiB, the S3
minimum part, one part in flight), so a 50 MB input costs a few MiB of memory, not 50 MB;
downloads are streamed to disk in 1 MiB chunks. Links are presigned by the bucket's own credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from stemhub.errors import ConfigError, ErrorCode, StemhubError

if TYPE_CHECKING:
    from obstore.store import S3Store

    from stemhub.config import Settings

log = logging.getLogger(__name__)

PART_BYTES = 5 * 1024 * 1024
"""S3's smallest multipart part; one part is the most an upload holds in memory."""
CHUNK_BYTES = 1024 * 1024
"""Reads from disk and writes to disk move this much at a time."""


def input_key(job_id: str, filename: str) -> str:
    """The key of a job's input; the file name keeps only its last path part."""
    name = Path(filename).name or "audio"
    return f"inputs/{job_id}/{name}"


def stem_key(job_id: str, filename: str) -> str:
    return f"{job_id}/{Path(filename).name}"


def job_prefixes(job_id: str) -> tuple[str, str]:
    """Every prefix that holds a job's objects (its stems, its input)."""
    return f"{job_id}/", f"inputs/{job_id}/"


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise StemhubError(ErrorCode.NOT_FOUND, "No such file.", operator_message=f"key {key!r}")
    return key


class ObjectStore(Protocol):
    """What hubs and workers need of shared storage."""

    async def upload(self, key: str, path: Path) -> int:
        """Copy a local file to ``key``; returns its size. Atomic: readers see all or nothing."""

    async def download(self, key: str, path: Path) -> int:
        """Copy ``key`` to a local file; returns its size; NOT_FOUND when absent."""

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Delete one object; nothing happens when it is absent."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""

    async def link(self, key: str, ttl_s: int) -> tuple[str, datetime] | None:
        """A download link that needs no credentials, or None where the hub signs its own."""

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` where the store is a folder on this machine."""

    async def close(self) -> None: ...


class FolderObjects:
    """A folder every process sees (one machine, or a shared volume): the default."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def local_path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _copy(self, source: Path, target: Path) -> int:
        if target.exists() and source.resolve() == target.resolve():
            return target.stat().st_size
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target.stat().st_size

    async def upload(self, key: str, path: Path) -> int:
        return await asyncio.to_thread(self._copy, path, self.local_path(key))

    async def download(self, key: str, path: Path) -> int:
        source = self.local_path(key)
        if not source.is_file():
            raise StemhubError(
                ErrorCode.NOT_FOUND, "The audio of this job is no longer kept.", retryable=False
            )
        return await asyncio.to_thread(self._copy, source, path)

    async def exists(self, key: str) -> bool:
        return self.local_path(key).is_file()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.local_path(key).unlink, True)

    async def delete_prefix(self, prefix: str) -> int:
        folder = self.local_path(prefix.rstrip("/"))
        if not folder.is_dir():
            return 0
        count = sum(1 for item in folder.rglob("*") if item.is_file())
        await asyncio.to_thread(shutil.rmtree, folder, True)
        return count

    async def link(self, key: str, ttl_s: int) -> tuple[str, datetime] | None:
        return None

    async def close(self) -> None:
        return None


async def _read_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file in 1 MiB reads off the event loop.

    obstore pulls these into one part at a time. Handing it the ``Path`` instead lets its
    own reader run ahead: two or three 5 MiB parts alive at once (measured by
    bench/s3_upload_memory.py: +5 to +15 MB for a 50 MB file, against +1 to +3 MB here).
    """
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()


def _unavailable(action: str, key: str, exc: Exception) -> StemhubError:
    return StemhubError(
        ErrorCode.BACKEND_UNAVAILABLE,
        "The file store is not reachable right now; the job will be tried again.",
        retryable=True,
        operator_message=f"object store {action} {key}: {type(exc).__name__}: {exc}",
    )


class S3Objects:
    """An S3-compatible bucket (AWS S3, MinIO, Ceph, R2...) through obstore."""

    def __init__(self, store: S3Store) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Objects:
        from obstore.store import S3Store

        url = settings.object_store_url or ""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError("STEMHUB_OBJECT_STORE_URL", "expected s3://bucket[/prefix]")
        secret = settings.s3_secret_access_key
        config: dict[str, object] = {"region": settings.s3_region}
        if settings.s3_access_key_id and secret is not None:
            config["access_key_id"] = settings.s3_access_key_id
            config["secret_access_key"] = secret.get_secret_value()
        endpoint = settings.s3_endpoint_url
        if endpoint:
            config["endpoint"] = endpoint
            # MinIO and other self-hosted stores answer on paths, not bucket subdomains
            config["virtual_hosted_style_request"] = False
        store = S3Store(
            parts.netloc,
            prefix=parts.path.strip("/") or None,
            config=config,  # type: ignore[arg-type]
            client_options={"allow_http": bool(endpoint and endpoint.startswith("http://"))},
        )
        return cls(store)

    def local_path(self, key: str) -> Path | None:
        return None

    async def upload(self, key: str, path: Path) -> int:
        import obstore

        size = (await asyncio.to_thread(path.stat)).st_size
        try:
            await obstore.put_async(
                self.store,
                _check_key(key),
                _read_chunks(path),
                chunk_size=PART_BYTES,
                max_concurrency=1,
            )
        except OSError as exc:
            raise _unavailable("upload", key, exc) from exc
        return size

    def _download(self, key: str, path: Path) -> int:
        import obstore

        path.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        try:
            result = obstore.get(self.store, _check_key(key))
            with path.open("wb") as handle:
                for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
                    handle.write(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            path.unlink(missing_ok=True)
            raise StemhubError(
                ErrorCode.NOT_FOUND, "The audio of this job is no longer kept.", retryable=False
            ) from None
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise _unavailable("download", key, exc) from exc
        return size

    async def download(self, key: str, path: Path) -> int:
        return await asyncio.to_thread(self._download, key, path)

    async def exists(self, key: str) -> bool:
        import obstore

        try:
            await obstore.head_async(self.store, _check_key(key))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _unavailable("head", key, exc) from exc
        return True

    async def delete(self, key: str) -> None:
        import obstore

        try:
            await obstore.delete_async(self.store, _check_key(key))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _unavailable("delete", key, exc) from exc

    async def delete_prefix(self, prefix: str) -> int:
        import obstore

        try:
            listed = await obstore.list(
                self.store, prefix=_check_key(prefix.rstrip("/"))
            ).collect_async()
            paths = [item["path"] for item in listed]
            if paths:
                await obstore.delete_async(self.store, paths)
        except OSError as exc:
            raise _unavailable("delete", prefix, exc) from exc
        return len(paths)

    async def link(self, key: str, ttl_s: int) -> tuple[str, datetime]:
        import obstore

        expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
        url = await obstore.sign_async(self.store, "GET", _check_key(key), timedelta(seconds=ttl_s))
        return url, expires

    async def close(self) -> None:
        return None


def open_object_store(settings: Settings) -> ObjectStore:
    """The bucket named by ``STEMHUB_OBJECT_STORE_URL``, else the hub's output folder."""
    if settings.object_store_url:
        return S3Objects.from_settings(settings)
    return FolderObjects(settings.resolved_output_dir)


async def delete_job_objects(objects: ObjectStore, job_id: str) -> int:
    removed = 0
    for prefix in job_prefixes(job_id):
        with contextlib.suppress(StemhubError):
            removed += await objects.delete_prefix(prefix)
    return removed


__all__ = [
    "FolderObjects",
    "ObjectStore",
    "S3Objects",
    "delete_job_objects",
    "input_key",
    "job_prefixes",
    "open_object_store",
    "stem_key",
]
