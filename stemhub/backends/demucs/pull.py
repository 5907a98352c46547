"""``stemhub models pull``: fetch HT-Demucs weights into a model folder, or say why not.

demucs publishes each model on the Hugging Face hub as ``{name}.yaml`` (the bag: member
signatures, weights, segment) and one ``{sig}.safetensors`` per member. Pulling is plain
HTTPS GETs of those files with httpx (``HF_ENDPOINT`` or ``--endpoint`` point it at a
mirror), so it needs neither torch nor huggingface_hub: a laptop with internet can pull
into a folder that is then copied to an offline GPU box.

Where the hub cannot be reached the first request fails within
:data:`FIRST_CONTACT_S` (DNS included) with advice for offline machines, instead of
hanging on a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from stemhub.backends.demucs.weights import (
    INSTALL_HINT,
    KNOWN_MODELS,
    WeightsError,
    find_in_folder,
    hf_repo_id,
    load_yaml,
)
from stemhub.errors import ErrorCode, StemhubError

DEFAULT_ENDPOINT = "https://huggingface.co"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Model names and member signatures become file names: no paths, nothing hidden."""
FIRST_CONTACT_S = 15.0
CHUNK_BYTES = 1 << 20

FileStarted = Callable[[str, int | None], None]


@dataclass(frozen=True)
class Pulled:
    name: str
    folder: Path
    downloaded: tuple[Path, ...]
    kept: tuple[Path, ...]


def default_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def _offline(name: str, endpoint: str, reason: str) -> StemhubError:
    return StemhubError(
        ErrorCode.SOURCE_UNREACHABLE,
        f"Could not reach {endpoint} to download the {name} weights ({reason}). "
        f"On a machine with internet access run `stemhub models pull --name {name} "
        f"--to DIR`, copy DIR to this machine and set STEMHUB_DEMUCS_REPO=DIR.",
        retryable=True,
        details={"model": name, "endpoint": endpoint},
    )


def _refused(name: str, endpoint: str, response: httpx.Response) -> StemhubError:
    if response.status_code in (401, 404):
        return StemhubError(
            ErrorCode.NOT_FOUND,
            f"{endpoint} has no demucs model called {name!r}; "
            f"known names: {', '.join(KNOWN_MODELS)}.",
            details={"model": name},
        )
    return StemhubError(
        ErrorCode.SOURCE_UNREACHABLE,
        f"{endpoint} answered {response.status_code} {response.reason_phrase} for the "
        f"{name} weights; try again later.",
        retryable=response.status_code >= 500 or response.status_code == 429,
        details={"model": name, "status": response.status_code},
    )


def _published_sha256(response: httpx.Response) -> str | None:
    """The file's sha256 as the hub states it for LFS files (on the redirect hop)."""
    for hop in (*response.history, response):
        value = str(hop.headers.get("x-linked-etag", "")).strip('"').removeprefix("W/").strip('"')
        if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            return value
    return None


async def _download(
    client: httpx.AsyncClient,
    url: str,
    target: Path,
    *,
    name: str,
    endpoint: str,
    started: FileStarted | None,
    first: bool,
) -> None:
    """Stream ``url`` to ``target`` (via a ``.part`` file); check the published sha256."""
    partial = target.with_name(target.name + ".part")
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(FIRST_CONTACT_S if first else None):
                    response = await stack.enter_async_context(client.stream("GET", url))
            except (httpx.TransportError, TimeoutError) as exc:
                reason = type(exc).__name__ if not str(exc) else str(exc)
                raise _offline(name, endpoint, reason) from exc
            if response.status_code >= 400:
                raise _refused(name, endpoint, response)
            length = response.headers.get("content-length")
            if started is not None:
                started(target.name, int(length) if length and length.isdigit() else None)
            digest = hashlib.sha256()
            with partial.open("wb") as sink:
                try:
                    async for chunk in response.aiter_bytes(CHUNK_BYTES):
                        digest.update(chunk)
                        sink.write(chunk)
                except httpx.TransportError as exc:
                    raise _offline(name, endpoint, f"the download broke off: {exc}") from exc
            expected = _published_sha256(response)
            if expected is not None and digest.hexdigest() != expected:
                raise StemhubError(
                    ErrorCode.SOURCE_UNREACHABLE,
                    f"{target.name} arrived damaged (checksum mismatch); run the pull again.",
                    retryable=True,
                )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


async def pull_model(
    name: str,
    folder: Path,
    *,
    endpoint: str | None = None,
    started: FileStarted | None = None,
) -> Pulled:
    """Download model ``name`` into ``folder``; files already there are kept.

    The bag description is written last, so a folder never looks complete while a
    member is missing.
    """
    if importlib.util.find_spec("yaml") is None:
        raise StemhubError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"Pulling reads the model's description with PyYAML: {INSTALL_HINT} "
            "(or pip install pyyaml).",
        )
    if not SAFE_NAME.fullmatch(name):
        raise StemhubError(
            ErrorCode.INVALID_REQUEST,
            f"{name!r} is not a model name; known names: {', '.join(KNOWN_MODELS)}.",
        )
    endpoint = (endpoint or default_endpoint()).rstrip("/")
    base = f"{endpoint}/{hf_repo_id(name)}/resolve/main"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    bag = folder / f"{name}.yaml"
    fresh_bag = folder / f"{name}.yaml.download"
    timeout = httpx.Timeout(60.0, connect=10.0)
    downloaded: list[Path] = []
    kept: list[Path] = []
    async with httpx.AsyncClient(follow_redirects=True, timeout=timeout) as client:
        try:
            await _download(
                client,
                f"{base}/{name}.yaml",
                fresh_bag,
                name=name,
                endpoint=endpoint,
                started=started,
                first=True,
            )
            try:
                data = load_yaml(fresh_bag)
            except WeightsError as exc:
                raise StemhubError(
                    ErrorCode.BACKEND_ERROR,
                    f"The description of {name} from {endpoint} cannot be read.",
                    operator_message=str(exc),
                ) from exc
            signatures = [str(sig) for sig in data["models"]]
            if not signatures or not all(SAFE_NAME.fullmatch(sig) for sig in signatures):
                raise StemhubError(
                    ErrorCode.BACKEND_ERROR,
                    f"The description of {name} from {endpoint} names no usable files.",
                    operator_message=f"models: {signatures!r}",
                )
            for sig in signatures:
                target = folder / f"{sig}.safetensors"
                if target.is_file():
                    kept.append(target)
                    continue
                await _download(
                    client,
                    f"{base}/{sig}.safetensors",
                    target,
                    name=name,
                    endpoint=endpoint,
                    started=started,
                    first=False,
                )
                downloaded.append(target)
            fresh_bag.replace(bag)
        finally:
            fresh_bag.unlink(missing_ok=True)
    if find_in_folder(folder, name, "the pulled folder") is None:
        raise StemhubError(ErrorCode.BACKEND_ERROR, f"The {name} download is incomplete.")
    return Pulled(name, folder, tuple(downloaded), tuple(kept))


__all__ = ["DEFAULT_ENDPOINT", "FIRST_CONTACT_S", "Pulled", "default_endpoint", "pull_model"]
