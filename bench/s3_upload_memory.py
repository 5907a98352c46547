"""Peak memory of moving a 50 MB input through S3: the hub's upload, the worker's download.

The S3 API server (moto's server mode) runs in this process on loopback; each mode runs
in a fresh subprocess that first moves a 6 MB file (imports, the HTTP client, the first
multipart upload's buffers: what a hub that has taken one job already holds), resets the
kernel's RSS high-water mark, moves the big file and reads the high-water mark again (the
method of bench/upload_memory.py, whose helpers this reuses):

- ``hub-upload``: ``S3Objects.upload`` (what the queue proxy does with a job's input:
  multipart, 1 MiB reads from disk into one 5 MiB part at a time);
- ``worker-download``: ``S3Objects.download`` (what ``stemhub worker`` does before it
  separates: streamed to disk in 1 MiB chunks);
- ``whole-file``: the baseline, ``path.read_bytes()`` then one ``put`` of the bytes.

Target: the hub's and the worker's increase under 10 MB each.

    uv run python bench/s3_upload_memory.py [--mb 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.upload_memory import _peak_mb, _reset_peak, _write_wav

TARGET_MB = 10.0
ACCESS_KEY, SECRET_KEY, BUCKET = "bench", "bench-secret", "stems"
MODES = ("hub-upload", "worker-download", "whole-file")


def _objects(endpoint: str):  # type: ignore[no-untyped-def]
    from stemhub.cluster.objects import S3Objects
    from stemhub.config import Settings

    settings = Settings(
        _env_file=None,
        object_store_url=f"s3://{BUCKET}/bench",
        s3_endpoint_url=endpoint,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
    )
    return S3Objects.from_settings(settings)


async def _child(mode: str, endpoint: str, small: Path, big: Path) -> dict[str, float]:
    import obstore

    objects = _objects(endpoint)
    out = big.parent / f"{mode}.out"

    async def move(path: Path) -> None:
        key = f"inputs/{mode}/{path.name}"
        if mode == "hub-upload":
            await objects.upload(key, path)
        elif mode == "worker-download":
            await objects.download(f"inputs/seed/{path.name}", out)
        else:
            await obstore.put_async(objects.store, key, path.read_bytes())  # noqa: ASYNC240

    await move(small)
    before = _reset_peak()
    started = time.perf_counter()
    await move(big)
    seconds = time.perf_counter() - started
    return {"baseline_mb": before, "peak_mb": _peak_mb(), "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--small", type=Path)
    parser.add_argument("--big", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.endpoint, args.small, args.big))))
        return 0

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    results: dict[str, dict[str, float]] = {}
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        client.create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="s3-memory-") as tmp:
            small = _write_wav(Path(tmp) / "small.wav", 6.0)
            big = _write_wav(Path(tmp) / "big.wav", args.mb)
            for path in (small, big):  # what the worker will download
                client.upload_file(str(path), BUCKET, f"bench/inputs/seed/{path.name}")
            size_mb = big.stat().st_size / 1e6
            for mode in MODES:
                command = [sys.executable, __file__, "--child", mode, "--endpoint", endpoint]
                command += ["--small", str(small), "--big", str(big)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"{mode} child failed:\n{done.stderr}")
                    return 1
                results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    print(f"a {size_mb:.1f} MB WAV through S3 (moto server on loopback), peak RSS:")
    print(f"{'mode':<16} {'RSS before MB':>14} {'peak MB':>9} {'increase MB':>12} {'seconds':>8}")
    increases: dict[str, float] = {}
    for mode, fig in results.items():
        increases[mode] = fig["peak_mb"] - fig["baseline_mb"]
        print(
            f"{mode:<16} {fig['baseline_mb']:>14.1f} {fig['peak_mb']:>9.1f} "
            f"{increases[mode]:>12.1f} {fig['seconds']:>8.2f}"
        )
    ok = all(increases[mode] < TARGET_MB for mode in ("hub-upload", "worker-download"))
    print(
        f"hub +{increases['hub-upload']:.1f} MB, worker +{increases['worker-download']:.1f} MB "
        f"vs whole-file +{increases['whole-file']:.1f} MB "
        f"(target < {TARGET_MB:.0f} MB: {'PASS' if ok else 'FAIL'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
