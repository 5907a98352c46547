"""What one webhook receiver can cost the hub: another key's delivery latency, and RSS.

Two cases from the n8n issue, each run against the outbox in this tree ("after") and
the one in git ``HEAD`` ("before", loaded from ``git show``), each in a fresh process:

- slow receiver: a receiver answers 200 and then trickles one byte every
  ``--trickle-every`` seconds for ``--trickle-for`` seconds; while that post is in
  flight another key's message is queued to a prompt receiver, and the time until it
  arrives is printed (normally a few milliseconds);
- big body: a receiver answers 200 with a ``--big-mb`` MB body; the sending process's
  peak RSS before and after the delivery is printed.

    nice -n 10 uv run --all-packages python bench/bridge_webhooks.py [--big-mb 400]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.raw_http import read_request  # noqa: E402

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


def _load_outbox(version: str) -> Any:
    """The outbox module of this tree, or of git HEAD registered under its own name."""
    if version == "after":
        import stemhub.outbox

        return stemhub.outbox
    source = subprocess.run(
        ["git", "show", "HEAD:stemhub/outbox.py"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "outbox_head.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("stemhub.outbox", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stemhub.outbox"] = module
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def _raw_server(answer: Answer, arrived: asyncio.Event) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            arrived.set()
            await answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _outbox(module: Any, data_dir: Path) -> tuple[Any, Any]:
    from stemhub._sealing import Sealer
    from stemhub._store import Store
    from stemhub.fetch import FetchPolicy

    store = await Store.open(f"sqlite:///{data_dir / 'hub.db'}")
    policy = FetchPolicy(max_bytes=1, allowed_hosts=frozenset({"127.0.0.1"}))
    return store, module.Outbox(store, Sealer(b"bench"), policy)


async def _slow_case(module: Any, args: argparse.Namespace, data_dir: Path) -> dict[str, float]:
    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        end = time.monotonic() + args.trickle_for
        while time.monotonic() < end:
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(args.trickle_every)

    async def prompt(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    slow_hit, fast_hit = asyncio.Event(), asyncio.Event()
    store, outbox = await _outbox(module, data_dir)
    async with _raw_server(trickle, slow_hit) as slow, _raw_server(prompt, fast_hit) as fast:
        worker = asyncio.create_task(outbox.run(poll_s=0.05))
        await outbox.enqueue(slow, b"{}", dedupe_id="slow", event="job.completed")
        await slow_hit.wait()
        queued = time.perf_counter()
        await outbox.enqueue(fast, b"{}", dedupe_id="fast", event="job.completed")
        await fast_hit.wait()
        latency = time.perf_counter() - queued
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    await store.close()
    return {"other_key_latency_s": latency}


async def _big_case(module: Any, url: str, data_dir: Path) -> dict[str, float]:
    store, outbox = await _outbox(module, data_dir)
    await outbox.enqueue(url, b"{}", dedupe_id="big", event="job.completed")
    before = _rss_mb()
    started = time.perf_counter()
    await outbox.deliver_due()
    seconds = time.perf_counter() - started
    await store.close()
    return {"rss_before_mb": before, "rss_peak_mb": _rss_mb(), "delivery_s": seconds}


def _child(args: argparse.Namespace) -> None:
    module = _load_outbox(args.version)
    with tempfile.TemporaryDirectory() as tmp:
        if args.case == "slow":
            result = asyncio.run(_slow_case(module, args, Path(tmp)))
        else:
            result = asyncio.run(_big_case(module, args.url, Path(tmp)))
    print(json.dumps(result))


def _run_child(
    args: argparse.Namespace, version: str, case: str, url: str = ""
) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--version",
        version,
        "--case",
        case,
        "--url",
        url,
        "--trickle-every",
        str(args.trickle_every),
        "--trickle-for",
        str(args.trickle_for),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


async def _serve_big(args: argparse.Namespace) -> None:
    total = args.big_mb * 1024 * 1024
    chunk = b"x" * (1024 * 1024)

    async def huge(writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        sent = 0
        while sent < total:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)

    async with _raw_server(huge, asyncio.Event()) as url:
        for version in ("before", "after"):
            result = await asyncio.to_thread(_run_child, args, version, "big", url)
            print(
                f"big body ({args.big_mb} MB answer)  {version:<6}  sender RSS "
                f"{result['rss_before_mb']:.0f} MB -> peak {result['rss_peak_mb']:.0f} MB, "
                f"delivery {result['delivery_s']:.2f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=int, default=400)
    parser.add_argument("--trickle-every", type=float, default=2.0)
    parser.add_argument("--trickle-for", type=float, default=40.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", default="after", help=argparse.SUPPRESS)
    parser.add_argument("--case", default="slow", help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    for version in ("before", "after"):
        result = _run_child(args, version, "slow")
        print(
            f"slow receiver (1 byte / {args.trickle_every:g} s for {args.trickle_for:g} s)  "
            f"{version:<6}  another key's delivery took {result['other_key_latency_s']:.3f} s"
        )
    asyncio.run(_serve_big(args))


if __name__ == "__main__":
    main()
