"""Seeded journeys through the Slack app under chaos, and what the people ended up with.

Each journey is one person in their own channel doing one thing the way Slack delivers
it: ``/split <link>``, ``/split`` then the modal, the shortcut on a message with a file
(sometimes a Slack Connect stub), a file sent in a DM, the "Another stem set" button
after a result, or ``/split`` with the hub restarted mid-delivery. The simulator's
:class:`~tests.fakes.slack.Chaos` refuses calls at random with errors each method can
really get. Afterwards every journey is judged from Slack's side only:

- silent: the person got nothing about their request (no result in the thread or DM,
  no ephemeral, response_url or DM message), or a status line still says queued,
  downloading or separating;
- double post: a job's results (the files message or the summary) appear twice.

Used by ``tests/slack/test_chaos.py`` (a few seeded journeys) and ``bench/slack_chaos.py``
(1,000, with the Web API figures).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from stemhub_slack.messages import ANOTHER_SET_ACTION, MODAL_CALLBACK_ID

from stemhub.hub import Hub
from stemhub.models import Job
from tests.fakes.slack import (
    BOT_USER_ID,
    TEAM_ID,
    Chaos,
    block_action,
    connect_stub,
    dm_file_message,
    event_callback,
    message_shortcut,
    slack_file,
    slash_command,
    view_submission,
)
from tests.slack.conftest import SlackWorld

KINDS = ("command", "modal", "shortcut", "dm_file", "buttons", "restart")
STALE_WORDS = ("queued", "downloading", "separating")
SETTLE_S = 120.0


@dataclass
class Journey:
    number: int
    kind: str
    user: str
    channel: str
    keys: list[str] = field(default_factory=list)
    """response_url keys handed out for this journey."""
    jobs: list[str] = field(default_factory=list)


@dataclass
class Report:
    journeys: int
    jobs: int
    silent: list[str]
    double_posts: list[str]
    stale: list[str]
    misthreaded: list[str]
    """Replies posted with a thread_ts that is no parent: Slack shows them nowhere."""
    calls: int
    calls_per_job: float
    peak_per_channel_s: int
    refusals: Counter[str]
    outcomes: Counter[str]

    def lines(self) -> list[str]:
        return [
            f"journeys: {self.journeys} ({self.jobs} jobs)",
            f"silent: {len(self.silent)}  double posts: {len(self.double_posts)}  "
            f"stale status lines: {len(self.stale)}  lost replies: {len(self.misthreaded)}",
            f"Web API calls: {self.calls} ({self.calls_per_job:.1f} per job)",
            f"peak calls in one second in one channel: {self.peak_per_channel_s}",
            f"chaos refusals: {sum(self.refusals.values())} "
            + ", ".join(f"{k} {v}" for k, v in self.refusals.most_common(8)),
            "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
        ]


class Journeys:
    """Runs journeys against one world; the hub may be replaced by a restart."""

    def __init__(self, world: SlackWorld, *, seed: int, rate: float) -> None:
        self.world = world
        self.random = random.Random(seed)
        self.chaos = Chaos(seed=seed, rate=rate)
        self.journeys: list[Journey] = []
        self.hub: Hub | None = None
        self._restart_lock = asyncio.Lock()

    async def start(self) -> None:
        self.world.configure(upload_stems="true")
        self.hub = await self.world.open_hub()
        await self.world.frontend(self.hub).identity()  # auth.test once, before chaos
        self.world.api.chaos = self.chaos

    def _new(self, number: int, kind: str) -> Journey:
        user, channel = f"U0J{number:05d}", f"C0J{number:05d}"
        self.world.api.add_channel(channel, members=(user,))
        self.world.api.dm(user)
        journey = Journey(number, kind, user, channel)
        self.journeys.append(journey)
        return journey

    def _response_url(self, journey: Journey, what: str) -> str:
        key = f"j{journey.number}-{what}"
        journey.keys.append(key)
        return self.world.api.response_url(key)

    async def run(self, count: int, *, concurrency: int = 8) -> None:
        kinds = [KINDS[n % len(KINDS)] for n in range(count)]
        self.random.shuffle(kinds)
        plain = [(n, k) for n, k in enumerate(kinds) if k != "restart"]
        restarts = [(n, k) for n, k in enumerate(kinds) if k == "restart"]
        gate = asyncio.Semaphore(concurrency)

        async def one(number: int, kind: str) -> None:
            async with gate:
                await getattr(self, f"_{kind}")(self._new(number, kind))

        await asyncio.gather(*(one(n, k) for n, k in plain))
        for number, kind in restarts:  # a restart stops every job of the hub: one at a time
            await one(number, kind)

    # the journeys

    async def _command(self, journey: Journey, text: str = "vocals") -> None:
        world = self.world
        body = slash_command(
            f"{world.elsewhere.url}/cdn/song{journey.number}.wav {text}",
            response_url=self._response_url(journey, "cmd"),
            user=journey.user,
            channel=journey.channel,
            trigger_id=world.api.trigger_id(),
        )
        await world.post(body)
        await self._settle(journey)

    async def _modal(self, journey: Journey) -> None:
        world = self.world
        trigger = world.api.trigger_id()
        body = slash_command(
            "",
            response_url=self._response_url(journey, "cmd"),
            user=journey.user,
            channel=journey.channel,
            trigger_id=trigger,
        )
        await world.post(body)
        view = await self._opened_view(trigger, journey)
        if view is None:
            return
        values = {
            "link": {
                "url": {
                    "type": "url_text_input",
                    "value": f"{world.elsewhere.url}/cdn/m{journey.number}.wav",
                }
            },
            "stems": {"stem_set": {"type": "static_select", "selected_option": {"value": "BOTH"}}},
        }
        await world.post(
            view_submission(
                callback_id=MODAL_CALLBACK_ID,
                private_metadata=view["private_metadata"],
                values=values,
                user=journey.user,
            )
        )
        await self._settle(journey)

    async def _opened_view(self, trigger: str, journey: Journey) -> dict[str, Any] | None:
        """The view the app opened with ``trigger``, or None when the person was told why not."""
        for _ in range(2000):
            calls = [
                c
                for c in self.world.api.calls_to("views.open")
                if c.args.get("trigger_id") == trigger
            ]
            if any(c.error is None for c in calls):
                opened = next(c for c in calls if c.error is None)
                view = opened.args["view"]
                return json.loads(view) if isinstance(view, str) else dict(view)
            if calls and self._told(journey):
                return None
            await asyncio.sleep(0.01)
        return None

    async def _shortcut(self, journey: Journey) -> None:
        world = self.world
        file_id = f"F0J{journey.number:05d}"
        url = world.files.file_url(file_id, "demo.wav")
        full = slack_file(file_id, "demo.wav", url)
        world.api.files[file_id] = full
        item = connect_stub(file_id) if self.random.random() < 0.3 else full
        message = world.api.user_message(journey.channel, files=[item])
        body = message_shortcut(
            files=[item],
            response_url=self._response_url(journey, "shortcut"),
            user=journey.user,
            channel=journey.channel,
            message_ts=message.ts,
        )
        await world.post(body)
        await self._settle(journey)

    async def _dm_file(self, journey: Journey) -> None:
        world = self.world
        file_id = f"F0D{journey.number:05d}"
        url = world.files.file_url(file_id, "memo.wav")
        dm = world.api.dm(journey.user).id
        file = slack_file(file_id, "memo.wav", url)
        message = world.api.user_message(dm, user=journey.user, files=[file])
        event = dm_file_message([file], user=journey.user, channel=dm, ts=message.ts)
        await world.post(event_callback(event, event_id=f"Ev0J{journey.number:05d}"))
        await self._settle(journey)

    async def _buttons(self, journey: Journey) -> None:
        await self._command(journey, "both")
        jobs = await self._jobs(journey)
        summary = self._summary(jobs[0]) if jobs else None
        if summary is None:
            return
        trigger = self.world.api.trigger_id()
        click = block_action(
            action_id=ANOTHER_SET_ACTION,
            value=jobs[0].id,
            response_url=self._response_url(journey, "button"),
            user=journey.user,
            channel=summary["channel"],
            message_ts=summary["ts"],
            thread_ts=summary["thread_ts"],
            trigger_id=trigger,
        )
        await self.world.post(click)
        view = await self._opened_view(trigger, journey)
        if view is None:
            return
        values = {
            "stems": {"stem_set": {"type": "static_select", "selected_option": {"value": "VOCALS"}}}
        }
        await self.world.post(
            view_submission(
                callback_id=MODAL_CALLBACK_ID,
                private_metadata=view["private_metadata"],
                values=values,
                user=journey.user,
            )
        )
        await self._settle(journey, jobs_wanted=2)

    async def _restart(self, journey: Journey) -> None:
        world = self.world
        api = world.api
        before = len(api.calls_to("files.getUploadURLExternal"))
        api.hold("files.getUploadURLExternal", after=before + 1)
        body = slash_command(
            f"{world.elsewhere.url}/cdn/r{journey.number}.wav both",
            response_url=self._response_url(journey, "cmd"),
            user=journey.user,
            channel=journey.channel,
            trigger_id=api.trigger_id(),
        )
        await world.post(body)
        for _ in range(1000):
            if len(api.calls_to("files.getUploadURLExternal")) > before + 1 or self._told(journey):
                break
            await asyncio.sleep(0.01)
        assert self.hub is not None
        await world.close_hub(self.hub)
        api.release("files.getUploadURLExternal")
        self.hub = await world.open_hub(serve=True, http_port=0)
        await self._settle(journey)

    # judging

    async def _jobs(self, journey: Journey) -> list[Job]:
        assert self.hub is not None
        mine = await self.hub.list_jobs(user_id=journey.user, limit=10)
        return sorted(mine, key=lambda j: j.created_at)

    async def _settle(self, journey: Journey, *, jobs_wanted: int = 1) -> None:
        """Wait until the journey's jobs are delivered (or it was refused and said so)."""
        assert self.hub is not None
        for _ in range(int(SETTLE_S / 0.02)):
            jobs = await self._jobs(journey)
            if len(jobs) >= jobs_wanted and all(
                j.delivered_at or j.delivery.get("notified") for j in jobs
            ):
                journey.jobs = [j.id for j in jobs]
                await asyncio.sleep(0.05)
                return
            if not jobs and self._told(journey) and await self._quiet(journey):
                return
            await asyncio.sleep(0.02)
        journey.jobs = [j.id for j in await self._jobs(journey)]

    async def _quiet(self, journey: Journey) -> bool:
        """No job appeared for a while after the person was told something."""
        await asyncio.sleep(0.3)
        return not await self._jobs(journey)

    def _told(self, journey: Journey) -> bool:
        api = self.world.api
        if any(key in journey.keys for key, _payload in api.responses):
            return True
        if any(user == journey.user for _channel, user, _text in api.ephemeral):
            return True
        dm = api.dm(journey.user).id
        return any(m.user == BOT_USER_ID and not m.files for m in api.channel_messages(dm))

    def _summary(self, job: Job) -> dict[str, str] | None:
        status = job.delivery.get("status")
        if not isinstance(status, dict) or "summary_ts" not in job.delivery:
            return None
        return {
            "channel": status["channel"],
            "ts": job.delivery["summary_ts"],
            "thread_ts": status["thread_ts"],
        }

    async def report(self) -> Report:
        assert self.hub is not None
        api = self.world.api
        silent: list[str] = []
        doubles: list[str] = []
        stale: list[str] = []
        outcomes: Counter[str] = Counter()
        jobs_total = 0
        for journey in self.journeys:
            jobs = await self._jobs(journey)
            jobs_total += len(jobs)
            results = 0
            threads: dict[tuple[str, str], list[Job]] = defaultdict(list)
            for job in jobs:
                status = job.delivery.get("status")
                if isinstance(status, dict):
                    message = api.message(status["channel"], status["ts"])
                    channel = api.workspaces[TEAM_ID].channels.get(status["channel"])
                    writable = channel is not None and not channel.archived
                    if (
                        writable
                        and message is not None
                        and any(w in message.text for w in STALE_WORDS)
                    ):
                        stale.append(f"{journey.kind} #{journey.number}: {message.text[:60]}")
                    threads[(status["channel"], status["thread_ts"])].append(job)
                delivered = job.delivered_at and "error" not in job.delivery
                outcome = "delivered" if delivered else "notified"
                outcomes[outcome if job.delivery.get("notified") or delivered else "other"] += 1
            for (channel_id, thread_ts), in_thread in threads.items():
                thread = api.thread(channel_id, thread_ts)
                summaries = [m for m in thread if m.blocks and m.text.startswith("Stems of")]
                files = [m for m in thread if m.files]
                if len(summaries) > len(in_thread) or len(files) > len(in_thread):
                    doubles.append(f"{journey.kind} #{journey.number}: {len(summaries)} summaries")
                results += len(summaries)
            dm = api.dm(journey.user).id
            dm_files = [
                m
                for m in api.channel_messages(dm)
                if m.user == BOT_USER_ID and m.files and not m.thread_ts
            ]
            if len(dm_files) > len(jobs):
                doubles.append(f"{journey.kind} #{journey.number}: {len(dm_files)} DM file posts")
            if not results and not self._told(journey):
                silent.append(f"{journey.kind} #{journey.number} (jobs: {[j.id for j in jobs]})")
        per_channel: dict[str, list[float]] = defaultdict(list)
        for call in api.calls:
            channel = call.args.get("channel") or call.args.get("channel_id")
            if channel:
                per_channel[str(channel)].append(call.at)
        peak = max((_peak(times) for times in per_channel.values()), default=0)
        counted = [c for c in api.calls if c.method != "auth.test"]
        return Report(
            journeys=len(self.journeys),
            jobs=jobs_total,
            silent=silent,
            double_posts=doubles,
            stale=stale,
            misthreaded=[f"{m.channel} {m.thread_ts}: {m.text[:40]}" for m in api.misthreaded],
            calls=len(counted),
            calls_per_job=len(counted) / max(1, jobs_total),
            peak_per_channel_s=peak,
            refusals=Counter(error for _method, error in self.chaos.picked),
            outcomes=outcomes,
        )


def _peak(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


__all__ = ["KINDS", "Journey", "Journeys", "Report"]
