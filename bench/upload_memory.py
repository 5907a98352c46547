"""Peak memory of uploading a 50 MB file to StemSplit: streamed vs whole-file read.

Runs the local fake StemSplit server in this process and, for each mode, a fresh
subprocess that sends the same ~50 MB WAV through ``POST /upload``, the PUT to the
presigned URL and ``POST /jobs``:

- ``stemhub``: ``StemSplitBackend.start`` (async httpx, the file streamed in chunks);
- ``sdk-style``: what the official SDK does (``path.read_bytes()`` then a sync PUT of
  the bytes), the baseline.

Each child uploads a small file first (imports, the connection pool and buffers then
belong to the baseline), resets the kernel's RSS high-water mark to its current RSS,
uploads the big file and reads the high-water mark again; the difference is the peak
cost of the upload. Target for stemhub: less than 10 MB.

    uv run python bench/upload_memory.py [--mb 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_MB = 10.0


def _reset_peak() -> float:
    """Reset the kernel's high-water mark to the current RSS; returns that RSS in MB.

    Linux resets ``VmHWM`` when 5 is written to ``/proc/self/clear_refs``, so the peak
    measured afterwards belongs to the upload alone, not to imports before it.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_mb() -> float:
    return _status_mb("VmHWM")


def _write_wav(path: Path, megabytes: float) -> Path:
    import soundfile

    rate, channels = 44100, 2
    frames = int(megabytes * 1e6 / (2 * channels))
    rng = np.random.default_rng(1)
    with soundfile.SoundFile(path, "w", rate, channels, subtype="PCM_16") as out:
        block = 1 << 16
        for start in range(0, frames, block):
            n = min(block, frames - start)
            out.write((0.1 * rng.standard_normal((n, channels))).astype(np.float32))
    return path


async def _child_stemhub(base_url: str, api_key: str, small: Path, big: Path) -> dict[str, float]:
    from stemhub.backends.base import SeparationTask
    from stemhub.backends.stemsplit.backend import StemSplitBackend
    from stemhub.backends.stemsplit.settings import StemSplitSettings
    from stemhub.config import Settings
    from stemhub.models import OutputFormat, StemSet

    settings = Settings(_env_file=None, data_dir=big.parent / "stemhub")
    stemsplit = StemSplitSettings(_env_file=None, api_key=api_key, base_url=base_url)
    backend = StemSplitBackend(settings, stemsplit)

    def task(path: Path) -> SeparationTask:
        return SeparationTask(
            job_id=path.stem,
            stem_set=StemSet.FOUR_STEMS,
            stems=StemSet.FOUR_STEMS.stems,
            output_format=OutputFormat.WAV,
            input_path=path,
            filename=path.name,
            out_dir=big.parent / "out",
        )

    await backend.start(task(small))
    before = _reset_peak()
    started = time.perf_counter()
    await backend.start(task(big))
    seconds = time.perf_counter() - started
    after = _peak_mb()
    await backend.close()
    return {"baseline_mb": before, "peak_mb": after, "seconds": seconds}


def _child_sdk_style(base_url: str, api_key: str, small: Path, big: Path) -> dict[str, float]:
    import httpx

    def upload(client: httpx.Client, path: Path) -> None:
        ticket = client.post(
            f"{base_url}/upload",
            json={"filename": path.name, "contentType": "audio/wav"},
            headers={"Authorization": f"Bearer {api_key}"},
        ).json()
        data = path.read_bytes()
        response = client.put(
            ticket["uploadUrl"],
            content=data,
            headers={"Content-Type": "audio/wav", "Content-Length": str(len(data))},
        )
        response.raise_for_status()
        created = client.post(
            f"{base_url}/jobs",
            json={
                "uploadKey": ticket["uploadKey"],
                "fileName": path.name,
                "outputType": "FOUR_STEMS",
            },
            headers={"Authorization": f"Bearer {api_key}"},
        )
        created.raise_for_status()

    with httpx.Client(timeout=600) as client:
        upload(client, small)
        before = _reset_peak()
        started = time.perf_counter()
        upload(client, big)
        seconds = time.perf_counter() - started
        after = _peak_mb()
    return {"baseline_mb": before, "peak_mb": after, "seconds": seconds}


def child(mode: str, base_url: str, api_key: str, small: Path, big: Path) -> None:
    if mode == "stemhub":
        figures = asyncio.run(_child_stemhub(base_url, api_key, small, big))
    else:
        figures = _child_sdk_style(base_url, api_key, small, big)
    print(json.dumps(figures))


async def parent(megabytes: float) -> int:
    from tests.fakes.stemsplit import run_fake_stemsplit

    with tempfile.TemporaryDirectory(prefix="upload-memory-") as tmp:
        small = _write_wav(Path(tmp) / "small.wav", 0.2)
        big = _write_wav(Path(tmp) / "big.wav", megabytes)
        size_mb = big.stat().st_size / 1e6
        results: dict[str, dict[str, float]] = {}
        async with run_fake_stemsplit() as fake:
            for mode in ("stemhub", "sdk-style"):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    "--base-url",
                    fake.base_url,
                    "--api-key",
                    fake.api_key,
                    "--small",
                    str(small),
                    "--big",
                    str(big),
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await proc.communicate()
                if proc.returncode != 0:
                    print(f"{mode} child failed with exit code {proc.returncode}")
                    return 1
                results[mode] = json.loads(out.decode().strip().splitlines()[-1])
            uploads = [u for u in fake.state.uploads.values() if u.path is not None]
            assert all(u.content_length == u.size for u in uploads)
    print(f"upload of a {size_mb:.1f} MB WAV to the fake StemSplit (loopback), peak RSS:")
    print(f"{'mode':<11} {'RSS before MB':>14} {'peak MB':>9} {'increase MB':>12} {'seconds':>8}")
    for mode, fig in results.items():
        increase = fig["peak_mb"] - fig["baseline_mb"]
        print(
            f"{mode:<11} {fig['baseline_mb']:>14.1f} {fig['peak_mb']:>9.1f} "
            f"{increase:>12.1f} {fig['seconds']:>8.2f}"
        )
    ours = results["stemhub"]["peak_mb"] - results["stemhub"]["baseline_mb"]
    theirs = results["sdk-style"]["peak_mb"] - results["sdk-style"]["baseline_mb"]
    verdict = "PASS" if ours < TARGET_MB else "FAIL"
    print(
        f"stemhub streaming: +{ours:.1f} MB vs SDK-style +{theirs:.1f} MB "
        f"(target < {TARGET_MB:.0f} MB: {verdict})"
    )
    return 0 if ours < TARGET_MB else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the big file in MB")
    parser.add_argument("--child", choices=["stemhub", "sdk-style"])
    parser.add_argument("--base-url")
    parser.add_argument("--api-key")
    parser.add_argument("--small", type=Path)
    parser.add_argument("--big", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.base_url, args.api_key, args.small, args.big)
        return 0
    return asyncio.run(parent(args.mb))


if __name__ == "__main__":
    sys.exit(main())
