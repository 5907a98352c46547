"""Audio coming in: presigned PUT uploads, multipart forms and raw binary bodies.

Every path streams the bytes to a file under the hub's work folder and stops as soon as
the size cap is passed, so a client cannot fill memory or disk by lying about
``Content-Length`` or by never ending a chunked body.

The StemSplit flow is two steps: ``POST /upload`` hands out an upload key and a URL on
the bridge itself, signed with the hub's key and valid for ``upload_ttl_s``; the client
PUTs the bytes there without its API key (as it would to object storage), then creates
a job with the upload key. Upload records live in the store, so the PUT and the job may
reach different hub instances sharing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from stemhub import ErrorCode, StemhubError, format_bytes, stemsplit_wire

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from stemhub import PluginHub

log = logging.getLogger(__name__)

NAMESPACE = "n8n_bridge.uploads"
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 32
USED_SUFFIX = ":used"


@dataclass(frozen=True)
class Received:
    """A file that arrived: where it is now and what the client called it."""

    path: Path
    filename: str
    content_type: str | None
    size_bytes: int


def clean_filename(name: str | None, default: str = "audio") -> str:
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")
    return base[:200] or default


def discard(path: Path | None) -> None:
    """Remove a partial or unwanted file; synchronous so a cancelled task still does it."""
    if path is not None:
        path.unlink(missing_ok=True)


def _used_error() -> StemhubError:
    return StemhubError(
        ErrorCode.CONFLICT,
        "This upload already started a job; ask for a new upload URL for another file.",
    )


def _too_large(limit: int) -> StemhubError:
    return StemhubError(
        ErrorCode.FILE_TOO_LARGE,
        f"The file is larger than the {format_bytes(limit)} limit.",
        details={"maxBytes": limit},
    )


def _create(path: Path) -> anyio.AsyncFile[bytes]:
    """A new file to write the body into, opened on the loop (a small, local open): opened
    in a worker thread (``anyio.open_file``), it was dropped unclosed when a cancel
    landed while the thread opened it. Writes and the close still go to threads."""
    return anyio.wrap_file(path.open("xb"))


class Uploads:
    def __init__(self, hub: PluginHub, *, ttl_s: int) -> None:
        self.hub = hub
        self.ttl_s = ttl_s
        self.folder = hub.work_dir("bridge-uploads")
        self._key = hub.derive_key("n8n-bridge-upload")
        self.state = hub.kv(NAMESPACE)

    @property
    def max_bytes(self) -> int:
        return self.hub.settings.max_upload_bytes

    def _new_path(self, suffix: str = "") -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{secrets.token_hex(12)}{suffix}"

    def _signature(self, upload_key: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{upload_key}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    # the StemSplit two-step upload

    async def ticket(
        self, owner: str, filename: str, content_type: str | None, base_url: str
    ) -> dict[str, Any]:
        """``POST /upload``: a key and a presigned PUT URL on this bridge."""
        name = clean_filename(filename)
        ctype = content_type or stemsplit_wire.content_type_for(name)
        upload_key = "upl_" + secrets.token_hex(12)
        expires = int(time.time()) + self.ttl_s
        record = {"owner": owner, "filename": name, "content_type": ctype, "expires": expires}
        keep_s = self.ttl_s + self.hub.settings.retention_hours * 3600
        await self.state.put(upload_key, record, ttl_s=keep_s)
        signature = self._signature(upload_key, expires)
        url = f"{base_url}/api/v1/uploads/{upload_key}?expires={expires}&signature={signature}"
        return {
            "uploadUrl": url,
            "uploadKey": upload_key,
            "expiresAt": datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z"),
            "maxFileSizeBytes": self.max_bytes,
            "maxFileSizeMb": self.max_bytes // (1024 * 1024),
            "contentType": ctype,
        }

    async def receive_put(self, request: Request) -> None:
        """The PUT to a presigned URL: check the signature, stream the bytes to disk."""
        upload_key = request.path_params["upload_key"]
        expires = request.query_params.get("expires", "")
        signature = request.query_params.get("signature", "")
        forbidden = StemhubError(ErrorCode.FORBIDDEN, "This upload link is not valid.")
        if not expires.isascii() or not expires.isdigit():
            raise forbidden
        expected = self._signature(upload_key, int(expires)).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            raise forbidden
        if int(expires) < time.time():
            raise StemhubError(
                ErrorCode.FORBIDDEN, "This upload link has expired; ask for a new one."
            )
        record = await self.state.get(upload_key)
        if not isinstance(record, dict):
            raise StemhubError(ErrorCode.NOT_FOUND, "There is no such upload.")
        if await self._used(upload_key):
            raise _used_error()
        received = await self.stream_body(request, suffix=Path(record["filename"]).suffix)
        if await self._used(upload_key):
            discard(received.path)
            raise _used_error()
        old = record.get("path")
        record.update(path=str(received.path), size=received.size_bytes)
        await self.state.put(upload_key, record, ttl_s=self._keep_s)
        if old and old != str(received.path):
            discard(Path(old))

    @property
    def _keep_s(self) -> float:
        return self.ttl_s + self.hub.settings.retention_hours * 3600

    async def _used(self, upload_key: str) -> bool:
        return await self.state.get(upload_key + USED_SUFFIX) is not None

    async def describe(self, owner: str, upload_key: str) -> tuple[str, int] | None:
        """The name and size of what was uploaded (what an idempotent retry is compared on)."""
        record = await self.state.get(upload_key)
        if not isinstance(record, dict) or record.get("owner") != owner:
            return None
        return str(record["filename"]), int(record.get("size") or 0)

    async def take(self, owner: str, upload_key: str) -> Received:
        """The uploaded file behind ``upload_key`` (the key's own uploads only), once.

        An upload starts one job: the first caller across all hubs marks it used and the
        file moves to a name no upload URL leads to, so a late PUT to the same link can
        neither replace nor delete the input of the job it started.
        """
        record = await self.state.get(upload_key)
        if not isinstance(record, dict) or record.get("owner") != owner:
            raise StemhubError(ErrorCode.INVALID_REQUEST, "Unknown uploadKey.")
        path = record.get("path")
        if not path or not await anyio.Path(path).is_file():
            if await self._used(upload_key):
                raise _used_error()
            raise StemhubError(
                ErrorCode.INVALID_REQUEST,
                "Nothing was uploaded to this uploadKey yet: PUT the file to uploadUrl first.",
            )
        if not await self.state.add(upload_key + USED_SUFFIX, True, ttl_s=self._keep_s):
            raise _used_error()
        source = Path(path)
        owned = source.with_name(source.name + ".job")
        await anyio.Path(source).rename(owned)
        return Received(owned, record["filename"], record["content_type"], record["size"])

    # bodies

    async def _write_stream(self, chunks: AsyncIterator[bytes], dest: Path) -> int:
        size = 0
        try:
            async with _create(dest) as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise _too_large(self.max_bytes)
                    await out.write(chunk)
        except ClientDisconnect:
            discard(dest)
            raise StemhubError(ErrorCode.INVALID_REQUEST, "The upload was cut off.") from None
        except BaseException:
            discard(dest)
            raise
        return size

    async def stream_body(
        self, request: Request, *, suffix: str = "", filename: str | None = None
    ) -> Received:
        """A raw binary body (a PUT, or n8n's "binary file" body) written to disk."""
        length = request.headers.get("content-length", "")
        if length.isascii() and length.isdigit() and int(length) > self.max_bytes:
            raise _too_large(self.max_bytes)
        dest = self._new_path(suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else "")
        size = await self._write_stream(request.stream(), dest)
        if size == 0:
            discard(dest)
            raise StemhubError(ErrorCode.INVALID_REQUEST, "The body is empty: send the audio.")
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip() or None
        return Received(dest, clean_filename(filename), ctype, size)

    async def read_form(self, request: Request) -> tuple[dict[str, str], Received | None]:
        """A ``multipart/form-data`` body: its text fields and its (first) file part."""
        _kind, options = parse_options_header(request.headers.get("content-type"))
        boundary = options.get(b"boundary")
        if not boundary:
            raise StemhubError(ErrorCode.INVALID_REQUEST, "The multipart body has no boundary.")
        length = request.headers.get("content-length", "")
        limit = self.max_bytes + MAX_FIELDS * MAX_FIELD_BYTES
        if length.isascii() and length.isdigit() and int(length) > limit:
            raise _too_large(self.max_bytes)
        form = _FormReader(self.max_bytes)
        try:
            parser = MultipartParser(boundary, form.callbacks())
        except (ValueError, MultipartParseError):
            raise StemhubError(
                ErrorCode.INVALID_REQUEST, "The multipart body is malformed."
            ) from None
        out: anyio.AsyncFile[bytes] | None = None
        dest: Path | None = None
        try:
            async for chunk in request.stream():
                try:
                    parser.write(chunk)
                except MultipartParseError:
                    raise StemhubError(
                        ErrorCode.INVALID_REQUEST, "The multipart body is malformed."
                    ) from None
                if form.pending:
                    if out is None:
                        dest = self._new_path(Path(form.filename or "").suffix[:6])
                        out = _create(dest)
                    await out.write(b"".join(form.pending))
                    form.pending.clear()
            parser.finalize()
            if not form.ended:
                raise StemhubError(ErrorCode.INVALID_REQUEST, "The multipart body is incomplete.")
        except ClientDisconnect:
            discard(dest)
            raise StemhubError(ErrorCode.INVALID_REQUEST, "The upload was cut off.") from None
        except BaseException:
            discard(dest)
            raise
        finally:
            if out is not None:
                await out.aclose()
        if not form.has_file:
            return form.fields, None
        if dest is None or form.size == 0:
            discard(dest)
            raise StemhubError(ErrorCode.INVALID_REQUEST, "The file in the form is empty.")
        received = Received(dest, clean_filename(form.filename), form.content_type, form.size)
        return form.fields, received

    def cleanup(self, older_than_s: float) -> int:
        """Remove uploaded files older than ``older_than_s`` (their jobs are long done)."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.folder.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class _FormReader:
    """Callbacks for python-multipart's push parser: fields in memory, file data queued."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.pending: list[bytes] = []
        self.has_file = False
        self.filename: str | None = None
        self.content_type: str | None = None
        self.size = 0
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""
        self._part: str | None = None
        self._field_name = ""
        self._buffer = bytearray()

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._buffer = bytearray()
        self._part = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._name.strip().lower()] = self._value.strip()
        self._name = b""
        self._value = b""

    def _headers_finished(self) -> None:
        _disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is not None:
            if self.has_file:
                raise StemhubError(ErrorCode.INVALID_REQUEST, "Send one file per request.")
            self.has_file = True
            self._part = "file"
            self.filename = filename.decode("utf-8", "replace")
            ctype = self._headers.get(b"content-type", b"").decode("latin-1").strip()
            self.content_type = ctype.split(";", 1)[0] or None
            return
        if len(self.fields) >= MAX_FIELDS:
            raise StemhubError(ErrorCode.INVALID_REQUEST, "The form has too many fields.")
        self._part = "field"
        self._field_name = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._part == "file":
            self.size += len(piece)
            if self.size > self.max_bytes:
                raise _too_large(self.max_bytes)
            self.pending.append(bytes(piece))
        elif self._part == "field":
            self._buffer += piece
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise StemhubError(ErrorCode.INVALID_REQUEST, "A form field is too long.")

    def _part_end(self) -> None:
        if self._part == "field" and self._field_name:
            self.fields[self._field_name] = self._buffer.decode("utf-8", "replace")
        self._part = None

    def _end(self) -> None:
        self.ended = True


__all__ = ["NAMESPACE", "Received", "Uploads", "clean_filename", "discard"]
