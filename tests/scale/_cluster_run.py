"""The deployed topology as processes, fed by the bridge and the CLI, with kills mid-run.

Two hubs (the real ``stemhub run --plugins n8n_bridge --http``), two workers
(``tests.scale._worker_main``: ``stemhub worker`` with a fake separation of fixed
duration registered as ``local``), one ``stemhub split`` process, PostgreSQL, RabbitMQ
and the S3 server on loopback. Jobs come in through the bridge (``POST /v1/split`` with
an ``Idempotency-Key`` and a per-job ``callback_url``, retried on the other hub when a
hub is down) and through the CLI. Mid-run one worker is SIGKILLed while it runs a task,
and one hub while it holds unfinished jobs; both are restarted.

:func:`run_cluster` returns what happened (callbacks, jobs, downloads) for the caller to
judge: tests/scale/test_cluster_run.py at a CI size, bench/cluster.py ``--kill-run`` at
200 jobs. Every wait is on a condition, bounded by ``stemhub.testing.patience``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stemhub.cluster.records import NAMESPACE, Records
from stemhub.http import serve_asgi
from stemhub.hub import Hub
from stemhub.models import Job, JobStatus, Stage
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import free_port, make_settings, patience, write_test_tone
from tests.scale.conftest import REPO, WorkerProcess, Workers

STEMHUB = str(Path(sys.executable).parent / "stemhub")
FINAL_EVENTS = ("job.completed", "job.failed")
SEPARATE_S = 0.3
SUBMITTERS = 4
HUB_SLOTS = 4
"""Tasks each hub keeps on the workers (the proxied engine's concurrency)."""


@dataclass(frozen=True)
class Post:
    job: str | None
    event: str | None
    webhook_id: str | None
    at: float
    """When it arrived (``time.monotonic()``)."""


@dataclass
class Peers:
    """The file server every job's ``url`` names and the callback receiver."""

    song_url: str = ""
    hook_url: str = ""
    posts: list[Post] = field(default_factory=list)

    def finished(self) -> set[str]:
        return {p.job for p in self.posts if p.job and p.event in FINAL_EVENTS}


@contextlib.asynccontextmanager
async def serve_peers(song: bytes) -> AsyncIterator[Peers]:
    peers = Peers()

    async def serve_song(_request: Request) -> Response:
        return Response(song, media_type="audio/wav")

    async def hook(request: Request) -> Response:
        import json

        try:
            body = json.loads(await request.body())
            event, job = body.get("type"), (body.get("data") or {}).get("id")
        except (ValueError, AttributeError):
            event, job = None, None
        webhook_id = request.headers.get("webhook-id")
        peers.posts.append(Post(job, event, webhook_id, time.monotonic()))
        return Response("ok")

    app = Starlette(routes=[Route("/song.wav", serve_song), Route("/hook", hook, methods=["POST"])])
    async with serve_asgi(app) as origin:
        peers.song_url, peers.hook_url = f"{origin}/song.wav", f"{origin}/hook"
        yield peers


@dataclass
class HubProcess:
    """One ``stemhub run --plugins n8n_bridge --http``; restarted on the same port."""

    index: int
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    up: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **self.env,
            "STEMHUB_DATA_DIR": str(self.log.parent / f"hub{self.index}"),
            "STEMHUB_HTTP_HOST": "127.0.0.1",
            "STEMHUB_HTTP_PORT": str(self.port),
            "STEMHUB_PUBLIC_URL": self.url,
        }
        with self.log.open("ab") as handle:
            handle.write(b"\n--- start ---\n")
            handle.flush()
            self.process = subprocess.Popen(
                [STEMHUB, "run", "--plugins", "n8n_bridge", "--http"],
                cwd=self.log.parent,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self) -> None:
        """Until this start printed that it runs (after recovery, with HTTP up)."""
        assert self.process is not None
        deadline = time.monotonic() + patience(100)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hub {self.index} exited:\n{self.output()[-4000:]}")
            if "stemhub running" in self.output().rsplit("--- start ---", 1)[-1]:
                self.up = True
                return
            time.sleep(0.1)
        raise AssertionError(f"hub {self.index} never came up:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.up = False
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.up = False
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class ClusterOutcome:
    """What a run saw, for the caller to judge."""

    bridge_jobs: list[str]
    cli_jobs: list[str]
    cli_exit: int
    cli_output: str
    posts: list[Post]
    jobs: dict[str, Job]
    redelivered_tasks: int
    """Tasks received by more than one worker (the killed worker's, at least)."""
    downloads: Counter[str]
    """``ok`` and anything else (the reason a download failed), per stem and hub."""
    worker_killed_mid_task: bool
    hub_killed_holding: int
    """Unfinished jobs the hub held (it accepted them) when it was killed."""
    wall_s: float
    accepted_at: dict[str, float]
    """Job id -> when the bridge accepted it (``time.monotonic()``)."""

    def latencies(self) -> list[float]:
        """Accept to first final callback, per bridge job, in seconds."""
        first: dict[str, float] = {}
        for post in self.posts:
            if post.job and post.event in FINAL_EVENTS:
                first.setdefault(post.job, post.at)
        return sorted(first[j] - at for j, at in self.accepted_at.items() if j in first)

    def final_ids(self) -> dict[str, set[str]]:
        """Distinct webhook ids per job among its final callbacks."""
        ids: dict[str, set[str]] = defaultdict(set)
        for post in self.posts:
            if post.job and post.event in FINAL_EVENTS and post.webhook_id:
                ids[post.job].add(post.webhook_id)
        return ids


def cluster_env(base: dict[str, str], tmp: Path) -> dict[str, str]:
    """Every process's environment: the shared services, no stray STEMHUB_* of the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STEMHUB_") or k.startswith("STEMHUB_TEST_")
    }
    return {
        **env,
        **base,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
        "STEMHUB_CONFIG": str(tmp / "no-such-stemhub.toml"),
        "STEMHUB_SIGNING_KEY": "stemhub-cluster-run-signing-key",
        "STEMHUB_ALLOWED_HOSTS": "127.0.0.1",
        "STEMHUB_DEFAULT_BACKEND": "local",
        "STEMHUB_SEPARATE_CONCURRENCY": str(HUB_SLOTS),
        "STEMHUB_PROGRESS_INTERVAL_S": "1",
        "STEMHUB_QUOTA__PER_USER": "100000000/hour",
        "STEMHUB_QUOTA__PER_GUILD": "100000000/hour",
        "STEMHUB_QUOTA__PER_API_KEY": "100000000/hour",
        "STEMHUB_N8N_BRIDGE_RATE_LIMIT": "100000000/minute",
    }


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience(seconds)
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


class Driver:
    def __init__(
        self, tmp: Path, env: dict[str, str], *, jobs: int, cli_jobs: int, song: Path
    ) -> None:
        self.tmp = tmp
        self.env = env
        self.jobs = jobs
        self.cli_jobs = cli_jobs
        self.song = song
        self.hubs = [HubProcess(i, env, tmp / f"hub{i}.log") for i in range(2)]
        self.workers = Workers(tmp=tmp, base_env=env)
        self.token = ""
        self.accepted: dict[str, int] = {}
        """Job id -> the hub that accepted it."""
        self.accepted_at: dict[str, float] = {}
        self.refused: list[str] = []

    def start_worker(self, name: str) -> WorkerProcess:
        return self.workers.start(
            name, fake_names="local", delay_s=SEPARATE_S, steps=3, concurrency=2
        )

    async def submit(self, client: httpx.AsyncClient, n: int, peers: Peers) -> None:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": f"cluster-run-{n}",
        }
        body = {
            "url": peers.song_url,
            "callback_url": peers.hook_url,
            "stems": "BOTH",
            "output_format": "WAV",
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience(200)
        hub = self.hubs[n % 2]
        reason = ""
        while loop.time() < deadline:
            if not hub.up:
                hub = self.hubs[(hub.index + 1) % 2]
                await asyncio.sleep(0.2)
                continue
            try:
                answer = await client.post(hub.url + "/v1/split", json=body, headers=headers)
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__} from hub {hub.index}"
            else:
                if answer.status_code in (200, 202):
                    job_id = answer.json()["id"]
                    self.accepted.setdefault(job_id, hub.index)
                    self.accepted_at.setdefault(job_id, time.monotonic())
                    return
                reason = f"{answer.status_code} {answer.text[:200]}"
                if answer.status_code < 500 and answer.status_code != 429:
                    break
            hub = self.hubs[(hub.index + 1) % 2]
            await asyncio.sleep(0.3)
        self.refused.append(reason)

    async def submit_all(self, peers: Peers) -> None:
        numbers: asyncio.Queue[int] = asyncio.Queue()
        for n in range(self.jobs):
            numbers.put_nowait(n)

        async def submitter(client: httpx.AsyncClient) -> None:
            while not numbers.empty():
                await self.submit(client, numbers.get_nowait(), peers)
                # spread the jobs over the run, so the kills land among them
                await asyncio.sleep(SEPARATE_S / 2)

        async with httpx.AsyncClient(timeout=patience(30)) as client:
            await asyncio.gather(*(submitter(client) for _ in range(SUBMITTERS)))

    async def kill_a_worker_mid_task(self, observer: Hub, victim: WorkerProcess) -> bool:
        """SIGKILL ``victim`` while it runs a task (its run recorded, no outcome yet)."""
        records = Records(observer.kv(NAMESPACE))

        async def busy() -> bool:
            for job in await observer.list_jobs(statuses=[JobStatus.RUNNING], limit=200):
                task = job.remote_id
                if task and job.stage is Stage.SEPARATE:
                    runs = await records.runs(task)
                    if runs and runs[-1] == victim.name and await records.outcome(task) is None:
                        return True
            return False

        try:
            await until(busy, f"worker {victim.name} runs a task", 120)
        except AssertionError:
            victim.kill()
            return False
        victim.kill()
        return True

    async def kill_a_hub_holding_jobs(self, peers: Peers) -> int:
        hub = self.hubs[0]

        def holding() -> int:
            done = peers.finished()
            return sum(1 for job, at in self.accepted.items() if at == 0 and job not in done)

        async def holds_some() -> bool:
            return holding() >= 2

        with contextlib.suppress(AssertionError):
            await until(holds_some, "hub 0 holds unfinished jobs", 120)
        held = holding()
        hub.kill()
        return held

    async def run(self) -> ClusterOutcome:
        from stemhub_n8n_bridge.keys import ApiKeys

        started = time.monotonic()
        settings = make_settings(
            self.tmp / "observer",
            database_url=self.env["STEMHUB_DATABASE_URL"],
            signing_key=self.env["STEMHUB_SIGNING_KEY"],
        )
        # a hub that only reads: it migrates the fresh database before the others open it
        observer = Hub(settings, pm=get_plugin_manager(only=()), recover=False)
        async with observer, serve_peers(self.song.read_bytes()) as peers:
            self.token = (await ApiKeys(observer).create("cluster-run")).token
            for hub in self.hubs:
                hub.start()
            first, second = self.start_worker("w1"), self.start_worker("w2")
            for hub in self.hubs:
                await asyncio.to_thread(hub.wait_ready)
            for worker in (first, second):
                await asyncio.to_thread(self.workers.wait_ready, worker, patience(100))
            cli_inputs = []
            for n in range(self.cli_jobs):
                path = self.tmp / "cli-in" / f"song-{n}.wav"
                path.parent.mkdir(exist_ok=True)
                shutil.copyfile(self.song, path)
                cli_inputs.append(str(path))
            cli_log = self.tmp / "cli.log"
            with cli_log.open("wb") as handle:
                argv = [STEMHUB, "split", *cli_inputs, "-s", "BOTH", "--backend", "local"]
                cli = subprocess.Popen(  # noqa: ASYNC220 - waited for in a thread below
                    [*argv, "-o", str(self.tmp / "cli-out")],
                    cwd=self.tmp,
                    env={**self.env, "STEMHUB_DATA_DIR": str(self.tmp / "cli")},
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            submitting = asyncio.create_task(self.submit_all(peers))

            async def a_quarter_done() -> bool:
                return len(peers.finished()) >= self.jobs // 4

            await until(a_quarter_done, "a quarter of the bridge jobs called back", 300)
            mid_task = await self.kill_a_worker_mid_task(observer, first)
            restarted = self.start_worker("w1")

            async def half_done() -> bool:
                return len(peers.finished()) >= self.jobs // 2

            await until(half_done, "half of the bridge jobs called back", 300)
            held = await self.kill_a_hub_holding_jobs(peers)
            self.hubs[0].start()
            await asyncio.to_thread(self.hubs[0].wait_ready)
            await asyncio.to_thread(self.workers.wait_ready, restarted, patience(100))
            await submitting

            async def all_called_back() -> bool:
                return set(self.accepted) <= peers.finished()

            await until(all_called_back, "every bridge job called back", 600)
            cli_exit = await asyncio.to_thread(cli.wait, patience(300))
            wall = time.monotonic() - started
            # a moment more, so that a second callback, if there were one, is counted too
            await asyncio.sleep(2.0)
            jobs = {job.id: job for job in await observer.list_jobs(limit=100_000)}
            cli_ids = [job.id for job in jobs.values() if job.origin.platform == "cli"]
            redelivered = 0
            records = Records(observer.kv(NAMESPACE))
            for job in jobs.values():
                if job.remote_id and len(await records.deliveries(job.remote_id)) > 1:
                    redelivered += 1
            downloads = await self.download_everything(jobs)
        return ClusterOutcome(
            bridge_jobs=list(self.accepted),
            cli_jobs=cli_ids,
            cli_exit=cli_exit,
            cli_output=cli_log.read_text(errors="replace"),
            posts=list(peers.posts),
            jobs=jobs,
            redelivered_tasks=redelivered,
            downloads=downloads,
            worker_killed_mid_task=mid_task,
            hub_killed_holding=held,
            wall_s=wall,
            accepted_at=self.accepted_at,
        )

    async def download_everything(self, jobs: dict[str, Job]) -> Counter[str]:
        """Every stem of every bridge job through each hub's ``/v1`` API (with the key);
        every stem of every CLI job through its stored link."""
        expected = self.song.read_bytes()
        counts: Counter[str] = Counter()
        gate = asyncio.Semaphore(8)
        headers = {"Authorization": f"Bearer {self.token}"}

        async def fetch(client: httpx.AsyncClient, url: str, auth: bool) -> None:
            async with gate:
                try:
                    answer = await client.get(url, headers=headers if auth else None)
                except httpx.HTTPError as error:
                    counts[type(error).__name__] += 1
                    return
            ok = answer.status_code == 200 and answer.content == expected
            counts["ok" if ok else f"HTTP {answer.status_code}"] += 1

        async with httpx.AsyncClient(timeout=patience(30), follow_redirects=True) as client:
            calls = []
            for job_id in self.accepted:
                for hub in self.hubs:
                    answer = await client.get(f"{hub.url}/v1/jobs/{job_id}", headers=headers)
                    if answer.status_code != 200:
                        counts[f"job HTTP {answer.status_code}"] += 1
                        continue
                    for stem in answer.json()["stems"].values():
                        calls.append(fetch(client, stem["download_url"], True))
            for job in jobs.values():
                if job.origin.platform == "cli":
                    for output in job.outputs.values():
                        if output.url is None:
                            counts["no link"] += 1
                        else:
                            calls.append(fetch(client, output.url, False))
            await asyncio.gather(*calls)
        return counts

    def stop(self) -> None:
        for hub in self.hubs:
            hub.stop()
        self.workers.stop_all()


async def run_cluster(
    tmp: Path, services: dict[str, str], *, jobs: int, cli_jobs: int
) -> ClusterOutcome:
    """One run; ``services``: ``STEMHUB_DATABASE_URL``, ``STEMHUB_BROKER_URL`` and S3."""
    song = write_test_tone(tmp / "song.wav", seconds=0.5)
    driver = Driver(tmp, cluster_env(services, tmp), jobs=jobs, cli_jobs=cli_jobs, song=song)
    try:
        return await driver.run()
    finally:
        await asyncio.to_thread(driver.stop)


__all__ = ["ClusterOutcome", "Post", "run_cluster"]
