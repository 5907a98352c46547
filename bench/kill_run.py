"""Crash durability: jobs through the bridge while hubs are SIGKILLed and restarted.

Everything runs on loopback, each part in its own process:

- the separation service (:mod:`bench._hub_service`), started once and never killed: a
  job completes ``--delay`` seconds after it is created, whoever asks, so a restarted
  hub resumes a job by its remote id (:mod:`bench._kill_backend`, ``resumable``);
- the peers (:mod:`bench._kill_peers`): the file server every job's ``url`` names and the
  callback receiver, which records every post (job, event, webhook id, arrival time);
- the hubs (:mod:`bench._kill_hub`: ``stemhub run --plugins n8n_bridge --http`` plus the
  backend above, each with the local engine warm so it owns engine processes):
  ``sqlite``, one hub on a temp SQLite file; ``postgres``, two hubs on a fresh database
  of the PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), dropped afterwards.

A driver submits ``POST /v1/split`` (JSON ``url`` + per-job ``callback_url``, an
``Idempotency-Key`` per job, retried on another hub when a hub dies mid-request) at
``--rate`` per second to a hub that is up, and meanwhile SIGKILLs a random up hub
(seeded) ``--kills`` times, each a random ``--gap`` seconds after the hubs were all up
again, restarting it at once. Then it stops submitting and waits (at most ``--drain``
seconds) for every accepted job's final callback, and ``--settle`` seconds more for late
duplicates. The baseline is the same workload (``--jobs`` jobs at ``--rate``) with no
kills, in the same run.

Printed per configuration and mode: accepted, finished (a final callback), lost
(accepted, no final callback), jobs with two distinct webhook-ids for one event,
duplicate deliveries in total (posts beyond the first per job and event), orphan
processes (a process of a killed hub's tree still alive 5 s after the kill, found by an
environment marker every hub process and its children carry, and by the tree seen just
before the kill; checked again at the end), accept-to-callback p50/p99, kills. Lost and
doubled jobs get their job rows and outbox rows printed (and written to ``--keep``).

    nice -n 10 uv run --all-packages python bench/kill_run.py [--kills 100] [--rate 2]
        [--jobs 200] [--seed 1] [--configs sqlite,postgres] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from stemhub.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
MARKER = "KILLBENCH_TREE"
FINAL_EVENTS = ("job.completed", "job.failed")
ORPHAN_CHECK_S = 5.0
READY_TIMEOUT_S = 120.0
SUBMIT_TRY_S = 90.0
POSTGRES_ADMIN = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"]


def code_path(code: Path) -> str:
    """``PYTHONPATH`` that runs the processes from ``code`` (ahead of the editable installs)."""
    plugins = sorted(str(src) for src in code.glob("plugins/*/src"))
    return os.pathsep.join([str(code), *plugins])


def quantile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[q - 1]


# processes


class Started:
    """Every process this run started, so any exit (Ctrl-C too) can end them by pid."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.markers: set[str] = set()
        self.databases: list[str] = []

    def end_all(self) -> None:
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for proc in marked_processes(self.markers):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for name in self.databases:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.clear()


STARTED = Started()


def marked_processes(markers: set[str]) -> list[psutil.Process]:
    """Live processes whose environment carries one of ``markers``."""
    found: list[psutil.Process] = []
    if not markers:
        return found
    for proc in psutil.process_iter(["pid"]):
        try:
            mark = proc.environ().get(MARKER)
            if mark in markers and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def start_line_process(
    argv: list[str], env: dict[str, str], log: Path, prefix: str, within_s: float
) -> tuple[asyncio.subprocess.Process, str]:
    """Start a process; return it and the rest of its first stdout line that has ``prefix``."""
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(  # ended by pid in STARTED.end_all
            *argv,
            cwd=env.get("KILLBENCH_CWD", str(ROOT)),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    STARTED.pids.add(proc.pid)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(within_s):
            while line := (await proc.stdout.readline()).decode():
                if line.startswith(prefix):
                    return proc, line[len(prefix) :].strip()
    except TimeoutError:
        pass
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
    STARTED.pids.discard(proc.pid)
    raise RuntimeError(f"{argv[2] if len(argv) > 2 else argv} did not start; see {log}")


@dataclass
class Hub:
    index: int
    port: int
    env: dict[str, str]
    log: Path
    generation: int = 0
    proc: asyncio.subprocess.Process | None = None
    up: bool = False
    serving: bool = False
    """It accepted a job since it last started (READY comes before the first answer)."""
    marker: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, tries: int = 3) -> None:
        """Start the hub; one that is not up in ``READY_TIMEOUT_S`` is killed and tried again."""
        for attempt in range(1, tries + 1):
            self.generation += 1
            self.marker = f"{self.env[MARKER + '_BASE']}/{self.index}/{self.generation}"
            STARTED.markers.add(self.marker)
            env = self.env | {MARKER: self.marker}
            argv = [sys.executable, "-m", "bench._kill_hub"]
            try:
                self.proc, _ = await start_line_process(
                    argv, env, self.log, "READY ", READY_TIMEOUT_S
                )
            except RuntimeError:
                if attempt == tries:
                    raise
                print(f"  hub {self.index} did not start; again", file=sys.stderr, flush=True)
                continue
            self.up = True
            self.serving = False
            return

    def tree(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    async def kill(self) -> tuple[str, list[psutil.Process]]:
        """SIGKILL the hub process (only it: its children must die by themselves)."""
        assert self.proc is not None
        self.up = False
        tree = self.tree()
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        STARTED.pids.discard(self.proc.pid)
        return self.marker, tree

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.up = False
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        STARTED.pids.discard(self.proc.pid)


# the run


@dataclass
class Figures:
    config: str
    mode: str
    kills: int = 0
    kills_with_engine: int = 0
    restart_p50_s: float = float("nan")
    submitted: int = 0
    accepted: int = 0
    refused: int = 0
    finished: int = 0
    lost: int = 0
    two_ids: int = 0
    duplicates: int = 0
    both_events: int = 0
    unacked_callbacks: int = 0
    orphans: int = 0
    left_after_stop: int = 0
    p50_s: float = float("nan")
    p99_s: float = float("nan")
    max_s: float = float("nan")
    wall_s: float = 0.0
    lost_ids: list[str] = field(default_factory=list)
    doubled_ids: list[str] = field(default_factory=list)
    orphan_samples: list[str] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Callbacks:
    """The receiver's record, read as it grows."""

    path: Path
    tag: str
    offset: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)

    def read(self) -> None:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for raw in data[:end].splitlines():
            post = json.loads(raw)
            if post["tag"] != self.tag:
                continue
            self.posts.append(post)
            if post["event"] in FINAL_EVENTS and post["job"] not in self.final:
                self.final[post["job"]] = post["t"]


class Run:
    def __init__(self, args: argparse.Namespace, config: str, mode: str, peers: Peers) -> None:
        self.args = args
        self.config = config
        self.mode = mode
        self.peers = peers
        self.kills = args.kills if mode == "kills" else 0
        self.work = Path(tempfile.mkdtemp(prefix=f"killrun-{config}-{mode}-", dir=peers.tmp))
        self.tag = f"{config}-{mode}"
        self.hubs: list[Hub] = []
        self.accepted: dict[str, float] = {}
        self.figures = Figures(config, mode)
        self.rng = random.Random(f"{args.seed}/{config}/{mode}")
        self.pick = random.Random(f"{args.seed}/{config}/{mode}/pick")
        self.token = ""
        self.database_url: str | None = None
        self.orphan_checks: list[asyncio.Task[None]] = []
        self.killed_markers: set[str] = set()
        self.orphan_pids: set[int] = set()
        self.stop_submitting = asyncio.Event()
        self.restarts: list[float] = []
        self.slowest: list[str] = []
        self.posts_by_event: dict[tuple[str, str], list[str]] = {}
        self.final_at: dict[str, float] = {}

    # setup

    def hub_env(self, index: int, port: int) -> dict[str, str]:
        data_dir = self.work / (f"hub{index}" if self.config == "postgres" else "hub")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STEMHUB_", "KILLBENCH_"))}
        env |= {
            "PYTHONPATH": code_path(self.args.code),
            "PYTHONUNBUFFERED": "1",
            "KILLBENCH_CWD": str(self.work),
            "KILLBENCH_SERVICE_URL": self.peers.service,
            "KILLBENCH_ENGINE": "0" if self.args.no_engine else "1",
            MARKER + "_BASE": f"{self.peers.run_id}/{self.config}/{self.mode}",
            "STEMHUB_CONFIG": str(self.work / "no-such-stemhub.toml"),
            "STEMHUB_DATA_DIR": str(data_dir),
            "STEMHUB_HTTP_HOST": "127.0.0.1",
            "STEMHUB_HTTP_PORT": str(port),
            "STEMHUB_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "STEMHUB_SIGNING_KEY": f"killbench-{self.peers.run_id}",
            "STEMHUB_ALLOWED_HOSTS": "127.0.0.1",
            "STEMHUB_DEFAULT_BACKEND": "killbench",
            "STEMHUB_SEPARATE_CONCURRENCY": "1",
            "STEMHUB_QUOTA__PER_USER": "100000000/hour",
            "STEMHUB_QUOTA__PER_GUILD": "100000000/hour",
            "STEMHUB_QUOTA__PER_API_KEY": "100000000/hour",
            "STEMHUB_N8N_BRIDGE_RATE_LIMIT": "100000000/minute",
        }
        if self.database_url is not None:
            env["STEMHUB_DATABASE_URL"] = self.database_url
        return env

    async def setup(self) -> None:
        if self.config == "postgres":
            name = f"killrun_{self.peers.run_id}_{self.mode}"
            await asyncio.to_thread(psql, f'CREATE DATABASE "{name}"')
            STARTED.databases.append(name)
            self.database_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        count = 2 if self.config == "postgres" else 1
        for index in range(count):
            port = free_port()
            log = self.work / f"hub{index}.log"
            self.hubs.append(Hub(index, port, self.hub_env(index, port), log))
        self.token = await asyncio.to_thread(self.create_key)
        await asyncio.gather(*(hub.start() for hub in self.hubs))

    def create_key(self) -> str:
        stemhub = Path(sys.executable).parent / "stemhub"
        env = self.hubs[0].env | {"COLUMNS": "200", "NO_COLOR": "1"}
        made = subprocess.run(
            [str(stemhub), "keys", "create", "--name", "killbench"],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        for line in made.stdout.splitlines():
            if line.startswith("key:"):
                return line.split(":", 1)[1].strip()
        raise RuntimeError(f"stemhub keys create printed no key: {made.stdout}{made.stderr}")

    # driving

    async def hub_up(self, avoid: Hub | None = None) -> Hub:
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                up = [h for h in self.hubs if h.up and h is not avoid] or [
                    h for h in self.hubs if h.up
                ]
                if up:
                    return self.pick.choice(up)
                await asyncio.sleep(0.05)

    async def submit(self, client: httpx.AsyncClient, n: int) -> None:
        self.figures.submitted += 1
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": f"killrun-{self.peers.run_id}-{self.config}-{self.mode}-{n}",
        }
        body = {
            "url": self.peers.song,
            "callback_url": f"{self.peers.hook}/{self.tag}",
            "stems": "BOTH",
            "output_format": "WAV",
        }
        deadline = time.monotonic() + SUBMIT_TRY_S
        hub: Hub | None = None
        reason = "no hub up"
        while time.monotonic() < deadline:
            try:
                hub = await self.hub_up(avoid=hub)
                answer = await client.post(hub.url + "/v1/split", json=body, headers=headers)
            except (httpx.HTTPError, TimeoutError) as error:
                reason = type(error).__name__
                await asyncio.sleep(0.3)
                continue
            if answer.status_code in (200, 202):
                self.accepted.setdefault(answer.json()["id"], time.time())
                hub.serving = True
                return
            reason = f"{answer.status_code} {answer.text[:120]}"
            if answer.status_code < 500 and answer.status_code != 429:
                break
            await asyncio.sleep(0.3)
        self.figures.refused += 1
        self.figures.refusals[reason] = self.figures.refusals.get(reason, 0) + 1

    async def drive(self) -> None:
        limit = self.args.jobs if self.mode == "baseline" else None
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=5.0)) as client:
            began = time.monotonic()
            n = 0
            while not self.stop_submitting.is_set() and (limit is None or n < limit):
                await asyncio.sleep(max(0.0, began + n / self.args.rate - time.monotonic()))
                task = asyncio.create_task(self.submit(client, n))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
            if pending:
                await asyncio.gather(*pending)

    async def kill_loop(self) -> None:
        low, high = self.args.gap
        for _ in range(self.kills):
            # a hub killed before it ever answered tests nothing but its start: wait until
            # every hub accepted a job since it started (at most a minute), then the gap
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    while not all(h.serving for h in self.hubs):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            await asyncio.sleep(self.rng.uniform(low, high))
            victim = self.rng.choice(self.hubs)
            marker, tree = await victim.kill()
            self.figures.kills += 1
            self.figures.kills_with_engine += bool(tree)
            self.killed_markers.add(marker)
            self.orphan_checks.append(asyncio.create_task(self.check_orphans(marker, tree)))
            restarted = time.monotonic()
            await victim.start()
            self.restarts.append(time.monotonic() - restarted)
            if self.figures.kills % 10 == 0:
                done = f"  {self.config}/{self.mode}: {self.figures.kills} kills, "
                print(done + f"{len(self.accepted)} accepted", file=sys.stderr, flush=True)
        self.stop_submitting.set()

    async def check_orphans(self, marker: str, tree: list[psutil.Process]) -> None:
        await asyncio.sleep(ORPHAN_CHECK_S)
        left = await asyncio.to_thread(marked_processes, {marker})
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(proc)
        for proc in left:
            if proc.pid in self.orphan_pids:
                continue
            self.orphan_pids.add(proc.pid)
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(proc.cmdline())[:160]
                self.figures.orphan_samples.append(f"{marker} pid {proc.pid}: {cmd}")

    async def drain(self, callbacks: Callbacks) -> None:
        deadline = time.monotonic() + self.args.drain
        while time.monotonic() < deadline:
            callbacks.read()
            if all(job in callbacks.final for job in self.accepted):
                break
            await asyncio.sleep(0.5)
        if self.mode == "kills":
            await asyncio.sleep(self.args.settle)
        callbacks.read()

    async def run(self) -> Figures:
        began = time.monotonic()
        await self.setup()
        callbacks = Callbacks(self.peers.record, self.tag)
        try:
            if self.kills:
                await asyncio.gather(self.drive(), self.kill_loop())
            else:
                await self.drive()
            await self.drain(callbacks)
            await asyncio.gather(*self.orphan_checks)
            self.figures.wall_s = time.monotonic() - began
            self.figures.restart_p50_s = quantile(self.restarts, 50)
            self.count(callbacks)
            await asyncio.to_thread(self.diagnose)
        finally:
            for hub in self.hubs:
                await hub.stop()
            await asyncio.sleep(ORPHAN_CHECK_S)
            await self.final_orphans()
        return self.figures

    async def final_orphans(self) -> None:
        killed = await asyncio.to_thread(marked_processes, self.killed_markers)
        for proc in killed:
            if proc.pid not in self.orphan_pids:
                self.orphan_pids.add(proc.pid)
                with contextlib.suppress(psutil.Error):
                    cmd = " ".join(proc.cmdline())[:160]
                    self.figures.orphan_samples.append(f"at the end: pid {proc.pid}: {cmd}")
        stopped = {h.marker for h in self.hubs}
        self.figures.left_after_stop = len(await asyncio.to_thread(marked_processes, stopped))
        self.figures.orphans = len(self.orphan_pids)
        for proc in killed + await asyncio.to_thread(marked_processes, stopped):
            with contextlib.suppress(psutil.Error):
                proc.kill()

    # figures

    def count(self, callbacks: Callbacks) -> None:
        f = self.figures
        f.accepted = len(self.accepted)
        by_event: dict[tuple[str, str], list[str]] = defaultdict(list)
        events_of: dict[str, set[str]] = defaultdict(set)
        for post in callbacks.posts:
            by_event[(post["job"], post["event"])].append(post["webhook_id"])
            events_of[post["job"]].add(post["event"])
        f.finished = sum(1 for job in self.accepted if job in callbacks.final)
        f.lost_ids = sorted(job for job in self.accepted if job not in callbacks.final)
        f.lost = len(f.lost_ids)
        doubled = {job for (job, _), ids in by_event.items() if len(set(ids)) > 1}
        f.doubled_ids = sorted(doubled)
        f.two_ids = len(doubled)
        f.duplicates = sum(len(ids) - 1 for ids in by_event.values())
        f.both_events = sum(1 for ev in events_of.values() if set(FINAL_EVENTS) <= ev)
        f.unacked_callbacks = sum(1 for job in callbacks.final if job not in self.accepted)
        waits = [callbacks.final[j] - t for j, t in self.accepted.items() if j in callbacks.final]
        f.p50_s, f.p99_s = quantile(waits, 50), quantile(waits, 99)
        f.max_s = max(waits) if waits else float("nan")
        late = sorted(
            (callbacks.final[j] - t, j) for j, t in self.accepted.items() if j in callbacks.final
        )
        self.slowest = [job for _, job in reversed(late)]
        self.final_at = callbacks.final
        self.posts_by_event = by_event

    def diagnose(self) -> None:
        """Job rows and outbox rows of every lost or doubled job, beside the callbacks."""
        f = self.figures
        wanted = (f.lost_ids + f.doubled_ids)[:20] + self.slowest[:3]
        report: dict[str, Any] = {"figures": f.__dict__, "jobs": {}}
        for job_id in wanted:
            report["jobs"][job_id] = {
                "accepted_at": self.accepted.get(job_id),
                "final_callback_at": self.final_at.get(job_id),
                "row": self.query("SELECT * FROM jobs WHERE id = ?", job_id),
                "outbox": self.query(
                    "SELECT id, dedupe_key, event, status, attempts, lease_owner, lease_until,"
                    " last_status, last_error, created_at, delivered_at FROM outbox_messages"
                    " WHERE dedupe_key LIKE ?",
                    f"{job_id}:%",
                ),
                "callbacks": {
                    event: ids for (job, event), ids in self.posts_by_event.items() if job == job_id
                },
            }
        self.report = report
        (self.work / "diagnosis.json").write_text(json.dumps(report, indent=1, default=str))

    def query(self, sql: str, arg: str) -> list[dict[str, Any]]:
        if self.database_url is None:
            db = self.work / "hub" / "stemhub.db"
            with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(row) for row in conn.execute(sql, (arg,))]
        name = self.database_url.rsplit("/", 1)[1]
        inner = sql.replace("?", "'" + arg.replace("'", "''") + "'")
        text = psql(f"SELECT row_to_json(r) FROM ({inner}) r", database=name)
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def psql(sql: str, database: str = "postgres") -> str:
    argv = [*POSTGRES_ADMIN[:-1], database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


@dataclass
class Peers:
    tmp: Path
    run_id: str
    code: Path
    service: str = ""
    song: str = ""
    hook: str = ""
    record: Path = Path()
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self, delay_s: float) -> None:
        env = dict(os.environ) | {
            "PYTHONPATH": code_path(self.code),
            MARKER: f"{self.run_id}/peers",
        }
        STARTED.markers.add(f"{self.run_id}/peers")
        log = self.tmp / "peers.log"
        argv = [sys.executable, "-m", "bench._hub_service", "--delay", str(delay_s)]
        service, port = await start_line_process(argv, env, log, "PORT ", 60)
        self.procs.append(service)
        self.service = f"http://127.0.0.1:{port}"
        from stemhub.testing import write_test_tone

        song = write_test_tone(self.tmp / "song.wav", seconds=1.0)
        record = self.tmp / "callbacks.jsonl"
        argv = [sys.executable, "-m", "bench._kill_peers", "--record", str(record)]
        argv += ["--song", str(song)]
        receiver, port = await start_line_process(argv, env, log, "PORT ", 60)
        self.procs.append(receiver)
        self.song = f"http://127.0.0.1:{port}/song.wav"
        self.hook = f"http://127.0.0.1:{port}/hook"
        self.record = record

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
                try:
                    async with asyncio.timeout(10):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            STARTED.pids.discard(proc.pid)


def print_table(rows: list[Figures]) -> None:
    header = (
        f"{'config':<9} {'mode':<9} {'kills':>5} {'accepted':>8} {'finished':>8} {'lost':>5} "
        f"{'2 ids':>5} {'dup posts':>9} {'orphans':>7} {'p50 s':>7} {'p99 s':>7} {'max s':>7} "
        f"{'refused':>7} {'restart s':>9} {'engine kills':>12} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    for f in rows:
        if f.error is not None:
            print(f"{f.config:<9} {f.mode:<9} FAILED: {f.error}")
            continue
        print(
            f"{f.config:<9} {f.mode:<9} {f.kills:>5} {f.accepted:>8} {f.finished:>8} {f.lost:>5} "
            f"{f.two_ids:>5} {f.duplicates:>9} {f.orphans:>7} {f.p50_s:>7.1f} {f.p99_s:>7.1f} "
            f"{f.max_s:>7.1f} {f.refused:>7} {f.restart_p50_s:>9.1f} {f.kills_with_engine:>12} "
            f"{f.wall_s:>7.0f}"
        )
    for f in rows:
        notes = []
        if f.both_events:
            notes.append(f"{f.both_events} jobs got both job.completed and job.failed")
        if f.unacked_callbacks:
            notes.append(f"{f.unacked_callbacks} callbacks for jobs whose accept never came back")
        if f.left_after_stop:
            notes.append(f"{f.left_after_stop} processes left after a graceful stop")
        if f.refusals:
            notes.append(f"refusals: {f.refusals}")
        if f.lost_ids:
            notes.append(f"lost: {', '.join(f.lost_ids[:5])}")
        if f.doubled_ids:
            notes.append(f"two webhook-ids: {', '.join(f.doubled_ids[:5])}")
        notes += [f"orphan {sample}" for sample in f.orphan_samples[:5]]
        for note in notes:
            print(f"  {f.config}/{f.mode}: {note}")


async def main_async(args: argparse.Namespace, tmp: Path) -> list[Figures]:
    peers = Peers(tmp, uuid.uuid4().hex[:8], args.code)
    rows: list[Figures] = []
    try:
        await peers.start(args.delay)
        for config in args.configs:
            for mode in ("baseline", "kills"):
                run = Run(args, config, mode, peers)
                print(f"  {config}/{mode}: running", file=sys.stderr, flush=True)
                try:
                    rows.append(await run.run())
                except (RuntimeError, OSError, subprocess.SubprocessError, TimeoutError) as error:
                    failed = Figures(config, mode, error=f"{type(error).__name__}: {error}")
                    rows.append(failed)
                finally:
                    if args.keep is not None:
                        target = args.keep / f"{config}-{mode}"
                        shutil.copytree(run.work, target, dirs_exist_ok=True)
                print(
                    f"  {config}/{mode}: done in {rows[-1].wall_s:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                report = getattr(run, "report", None)
                if report and report["jobs"]:
                    print(json.dumps(report["jobs"], indent=1, default=str)[:6000], file=sys.stderr)
    finally:
        await peers.stop()
        if args.keep is not None and peers.record.is_file():
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(peers.record, args.keep / "callbacks.jsonl")
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs per configuration")
    parser.add_argument("--rate", type=float, default=2.0, help="jobs submitted per second")
    parser.add_argument("--jobs", type=int, default=200, help="jobs in each baseline run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--configs", default="sqlite,postgres")
    parser.add_argument("--delay", type=float, default=3.0, help="remote seconds per job")
    parser.add_argument(
        "--gap", default="0.5,4", help="MIN,MAX seconds from all hubs up to the next kill"
    )
    parser.add_argument("--drain", type=float, default=300.0, help="most seconds to wait")
    parser.add_argument(
        "--settle", type=float, default=70.0, help="seconds kept listening for late duplicates"
    )
    parser.add_argument("--no-engine", action="store_true", help="hubs start no local engine")
    parser.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="run the hubs from this copy of the tree (a snapshot, while others edit this one)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="copy logs and records here")
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(args.configs) - {"sqlite", "postgres"}
    if unknown or not args.configs:
        parser.error(f"--configs takes sqlite and/or postgres, not {', '.join(unknown)}")
    low, high = (float(x) for x in args.gap.split(","))
    args.gap = (low, high)
    if args.rate <= 0 or args.jobs < 1 or args.kills < 0 or not 0 <= low <= high:
        parser.error("--rate > 0, --jobs >= 1, --kills >= 0 and 0 <= MIN <= MAX for --gap")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    tmp = Path(tempfile.mkdtemp(prefix="killrun-"))
    print(
        f"kill run: configs {', '.join(args.configs)}; {args.kills} kills per config, "
        f"{args.rate:g} jobs/s, baseline {args.jobs} jobs, remote delay {args.delay:g} s, "
        f"gap {args.gap[0]:g}-{args.gap[1]:g} s, seed {args.seed}, "
        f"local engine {'off' if args.no_engine else 'warm in every hub'}; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows: list[Figures] = []
    try:
        rows = asyncio.run(main_async(args, tmp))
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
    finally:
        STARTED.end_all()
        shutil.rmtree(tmp, ignore_errors=True)
    if rows:
        print()
        print_table(rows)


if __name__ == "__main__":
    main()
