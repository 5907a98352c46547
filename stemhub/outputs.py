"""Where stems live and how download links are made.

Stems of a job live in ``<output_dir>/<job id>/``, except a shell user's: ``stemhub
split -o DIR`` writes straight into ``DIR/<song>/`` (the folder travels in the job's
``origin.context``), so stems are written once and the hub keeps no second copy. Links
are signed and expire: the URL carries the expiry and an HMAC of (job id, file name,
expiry) under the hub's signing key, so a forged or expired link is refused without any
lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from stemhub.errors import ErrorCode, StemhubError
from stemhub.models import Job, Output

log = logging.getLogger(__name__)

FILES_PREFIX = "/files"
CHOSEN_DIR_KEY = "output_dir"
"""Key of ``origin.context`` where the shell names the folder its user chose."""


def song_dirs(names: Sequence[str], root: Path) -> list[Path]:
    """One folder per input under ``root``, named for the song without its extension.

    Inputs that share a base name (``song.wav`` and ``song.ogg``) would overwrite each
    other's stems, so each of them gets its extension in the name instead
    (``song-wav/``, ``song-ogg/``). The same file named twice is refused.
    """
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise StemhubError(
            ErrorCode.INVALID_REQUEST, f"{', '.join(twice)} is given more than once."
        )
    stems = [Path(name).stem or Path(name).name for name in names]
    folders = []
    for name, stem in zip(names, stems, strict=True):
        suffix = Path(name).suffix.lstrip(".")
        shared = stems.count(stem) > 1
        folders.append(root / (f"{stem}-{suffix}" if shared and suffix else stem))
    return folders


def check_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and prove a file can be written in it, before any work.

    Raises ``INVALID_REQUEST`` naming the folder and the reason (a file is in the way,
    a read-only file system, no permission, a path under ``/proc``).
    """
    if path.exists() and not path.is_dir():
        raise StemhubError(
            ErrorCode.INVALID_REQUEST, f"Cannot write stems to {path}: it is a file, not a folder."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".stemhub-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise StemhubError(
            ErrorCode.INVALID_REQUEST, f"Cannot write stems to {path}: {reason}."
        ) from None


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

    def dir_for(self, job: Job) -> Path:
        """Where a job's stems are written: the shell user's folder, else ``job_dir``."""
        chosen = job.origin.context.get(CHOSEN_DIR_KEY) if job.origin.platform == "cli" else None
        if isinstance(chosen, str) and Path(chosen).is_absolute():
            return Path(chosen)
        return self.job_dir(job.id)

    def path_of(self, job: Job, output: Output) -> Path | None:
        if output.path is None:
            return None
        path = Path(output.path)
        return path if path.is_absolute() else self.root / path

    def sign(self, job_id: str, name: str, expires: int) -> str:
        """The signature of ``name`` of a job until ``expires`` (unix time).

        ``name`` is a stem's file name, or a name no file can have for other signed
        things of the job (the result page signs the empty name).
        """
        message = f"{job_id}/{name}:{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def check(self, job_id: str, name: str, expires: str, signature: str) -> int:
        """The expiry of a valid signature; FORBIDDEN when forged, JOB_EXPIRED when late."""
        try:
            expires_at = int(expires)
        except ValueError:
            raise StemhubError(ErrorCode.FORBIDDEN, "This link is not valid.") from None
        expected = self.sign(job_id, name, expires_at)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise StemhubError(ErrorCode.FORBIDDEN, "This link is not valid.")
        if expires_at < time.time():
            raise StemhubError(ErrorCode.JOB_EXPIRED, "This link has expired; ask for a new one.")
        return expires_at

    def link(self, job_id: str, filename: str, *, ttl_s: int | None = None) -> tuple[str, datetime]:
        """A signed URL for one file of a job; needs a public URL in the settings."""
        if self.public_url is None:
            raise StemhubError(
                ErrorCode.CONFIG_MISSING,
                "Download links are not available on this hub.",
                operator_message="Set STEMHUB_PUBLIC_URL so the hub can hand out stem links.",
            )
        expires = int(time.time()) + (ttl_s or self.link_ttl_s)
        sig = self.sign(job_id, filename, expires)
        url = f"{self.public_url}{FILES_PREFIX}/{job_id}/{quote(filename)}?exp={expires}&sig={sig}"
        return url, datetime.fromtimestamp(expires, UTC)

    def verify(self, job_id: str, filename: str, expires: str, signature: str) -> Path:
        """The file a signed link points to, or NOT_FOUND / FORBIDDEN / JOB_EXPIRED."""
        self.check(job_id, filename, expires, signature)
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

    def remove(self, job_id: str) -> bool:
        """Delete a job's stem folder; True when there was one."""
        folder = self.root / job_id
        if not folder.is_dir():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True


__all__ = ["CHOSEN_DIR_KEY", "FILES_PREFIX", "OutputStore", "check_writable_dir", "song_dirs"]
