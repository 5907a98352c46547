"""Where stems live and how download links are made.

Stems of a job live in ``<output_dir>/<job id>/``. Links are signed and expire: the URL
carries the expiry and an HMAC of (job id, file name, expiry) under the hub's signing
key, so a forged or expired link is refused without any lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import Job, Output

if TYPE_CHECKING:
    from stemhub.store import Store

log = logging.getLogger(__name__)

FILES_PREFIX = "/files"


class OutputStore:
    def __init__(
        self, root: Path, signing_key: bytes, *, public_url: str | None, link_ttl_s: int
    ) -> None:
        self.root = root
        self._key = signing_key
        self.public_url = public_url.rstrip("/") if public_url else None
        self.link_ttl_s = link_ttl_s

    def job_dir(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise StemhubError(ErrorCode.NOT_FOUND, "No such job.")
        return self.root / job_id

    def path_of(self, job: Job, output: Output) -> Path | None:
        if output.path is None:
            return None
        path = Path(output.path)
        return path if path.is_absolute() else self.root / path

    def _signature(self, job_id: str, filename: str, expires: int) -> str:
        message = f"{job_id}/{filename}:{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def link(self, job_id: str, filename: str, *, ttl_s: int | None = None) -> tuple[str, datetime]:
        """A signed URL for one file of a job; needs a public URL in the settings."""
        if self.public_url is None:
            raise StemhubError(
                ErrorCode.CONFIG_MISSING,
                "Download links are not available on this hub.",
                operator_message="Set STEMHUB_PUBLIC_URL so the hub can hand out stem links.",
            )
        expires = int(time.time()) + (ttl_s or self.link_ttl_s)
        sig = self._signature(job_id, filename, expires)
        url = f"{self.public_url}{FILES_PREFIX}/{job_id}/{quote(filename)}?exp={expires}&sig={sig}"
        return url, datetime.fromtimestamp(expires, UTC)

    def verify(self, job_id: str, filename: str, expires: str, signature: str) -> Path:
        """The file a signed link points to, or NOT_FOUND / FORBIDDEN / JOB_EXPIRED."""
        try:
            expires_at = int(expires)
        except ValueError:
            raise StemhubError(ErrorCode.FORBIDDEN, "This link is not valid.") from None
        expected = self._signature(job_id, filename, expires_at)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise StemhubError(ErrorCode.FORBIDDEN, "This link is not valid.")
        if expires_at < time.time():
            raise StemhubError(ErrorCode.JOB_EXPIRED, "This link has expired; ask for a new one.")
        if "/" in filename or filename.startswith("."):
            raise StemhubError(ErrorCode.NOT_FOUND, "No such file.")
        path = self.job_dir(job_id) / filename
        if not path.is_file():
            raise StemhubError(ErrorCode.NOT_FOUND, "This file is no longer kept.")
        return path

    def output_links(
        self, job: Job, *, ttl_s: int | None = None
    ) -> dict[str, tuple[str, datetime]]:
        """Fresh links for every stem of a job: signed local links, else remote ones."""
        links: dict[str, tuple[str, datetime]] = {}
        for stem, output in job.outputs.items():
            local = self.path_of(job, output)
            if local is not None and local.is_file() and self.public_url is not None:
                links[stem] = self.link(job.id, local.name, ttl_s=ttl_s)
            elif output.url is not None:
                expiry = output.expires_at or datetime.now(UTC) + timedelta(hours=1)
                links[stem] = (output.url, expiry)
        return links

    async def cleanup(self, store: Store, retention_s: float) -> int:
        """Remove stem folders of finished, delivered jobs older than the retention.

        A job not yet delivered keeps its stems whatever its age.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=retention_s)
        removed = 0
        for job in await store.jobs_with_outputs_older_than(cutoff):
            if job.delivered_at is None:
                continue
            folder = self.root / job.id
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


__all__ = ["FILES_PREFIX", "OutputStore"]
