"""Slack in HTTP mode behind a load balancer: any hub instance takes any request.

Two hub processes with the Slack frontend share one PostgreSQL database, the Slack
signing secret and ``STEMHUB_SIGNING_KEY``, and nothing else: each has its own data
folder and its own memory. Slack (the simulator's payloads, signed as Slack signs them)
reaches them only through a round-robin proxy (:mod:`tests.fakes.balancer`) that sends
request *n* to hub *n % 2*, so consecutive steps of a flow land on different hubs, and
the proxy's record proves which hub took each step. Whatever one step leaves for the
next (the OAuth state, the installed token, the job, "this event was taken") must
therefore live in the shared database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from stemhub_slack.keys import EVENTS_NS
from stemhub_slack.messages import (
    ANOTHER_SET_ACTION,
    MODAL_CALLBACK_ID,
    STEMS_BLOCK,
    STEMS_INPUT,
    URL_BLOCK,
    URL_INPUT,
)

from stemhub._store import Store
from stemhub.models import Job, JobStatus
from stemhub.testing import patience
from tests.fakes.balancer import Balancer, Routed
from tests.fakes.slack import (
    BOT_USER_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    TEAM_ID,
    MockSlack,
    block_action,
    dm_file_message,
    event_callback,
    signed,
    slack_file,
    slash_command,
    view_submission,
)
from tests.slack.conftest import SIGNING_SECRET, SlackWorld

# each test starts two hub processes (seconds each on an idle machine)
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SIGNING_KEY = "load-balanced-signing-key"
"""``STEMHUB_SIGNING_KEY`` of both hubs: sealed tokens and response URLs open on either."""
HUBS = 2


@dataclass
class HubProcess:
    process: asyncio.subprocess.Process
    log: Path
    url: str = ""

    async def started(self) -> None:
        """Wait until the hub serves HTTP (it prints its URL then)."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), patience(60))
        assert line, f"the hub did not start:\n{self.log.read_text()[-3000:]}"
        self.url = json.loads(line)["url"]


@dataclass
class LoadBalanced:
    world: SlackWorld
    balancer: Balancer
    store: Store
    """The shared database, read by the test (the hubs' jobs)."""
    hubs: list[HubProcess]

    @property
    def api(self) -> MockSlack:
        return self.world.api

    async def install(self, team: str) -> tuple[Routed, Routed]:
        """Install the app in ``team`` through the balancer; its two browser requests."""
        async with httpx.AsyncClient(timeout=patience(10)) as client:
            done = await self.world.install(client, team)
        assert done.status_code == 200, done.text
        start, callback = self.balancer.routed[-2:]
        assert start.path.startswith("/slack/install")
        assert callback.path.startswith("/slack/oauth_redirect")
        return start, callback

    async def jobs_of(self, user: str, count: int) -> list[Job]:
        """The ``count`` jobs ``user`` asked for, once all are delivered (oldest first)."""
        jobs: list[Job] = []
        for _ in range(int(patience(30) / 0.05)):
            jobs = await self.store.list_jobs(user_id=user, limit=10)
            if len(jobs) >= count and all(job.delivered_at for job in jobs):
                return sorted(jobs, key=lambda job: job.created_at)
            await asyncio.sleep(0.05)
        raise AssertionError(f"{user}: {[(j.id, j.status, j.delivered_at) for j in jobs]}")

    async def settled(self, user: str, count: int) -> list[Job]:
        """Like :meth:`jobs_of`, and no further job of ``user`` shows up a while later."""
        jobs = await self.jobs_of(user, count)
        # a second job is submitted right after its request's ack, which came long before
        await asyncio.sleep(0.5)
        assert len(await self.store.list_jobs(user_id=user, limit=10)) == count
        return jobs


def final_messages(api: MockSlack, jobs: list[Job]) -> None:
    """Each job ended with one result in Slack, and nothing was posted twice.

    Each job's status message ends "done"; each stem was shared once, in one message per
    job; the app's other messages there are exactly the status messages and one summary
    per job. Nobody got an ephemeral or response_url message (no error, no refusal).
    """
    channels = {job.delivery["status"]["channel"] for job in jobs}
    ours = [m for m in api.messages if m.channel in channels and m.user == BOT_USER_ID]
    for job in jobs:
        assert job.status is JobStatus.COMPLETED and "error" not in job.delivery
        status = job.delivery["status"]
        message = api.message(status["channel"], status["ts"])
        assert message is not None and "done" in message.text
    with_files = [m for m in ours if m.files]
    stems = [file for job in jobs for file in job.delivery["uploaded"].values()]
    assert len(with_files) == len(jobs)
    assert sorted(file for m in with_files for file in m.files) == sorted(stems)
    posted = sorted(m.ts for m in ours if not m.files)
    statuses = [job.delivery["status"]["ts"] for job in jobs]
    assert posted == sorted(statuses + [job.delivery["summary_ts"] for job in jobs])
    assert api.responses == [] and api.ephemeral == []


@contextlib.asynccontextmanager
async def hub_process(data_dir: Path, settings: dict[str, Any]) -> AsyncIterator[HubProcess]:
    """A hub process (tests/slack/_hub_main.py) until the block ends; SIGTERM, then kill."""
    data_dir.mkdir(parents=True)
    log = data_dir / "hub.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.slack._hub_main",
            json.dumps({**settings, "data_dir": str(data_dir)}),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        yield HubProcess(process, log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), patience(10))
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest_asyncio.fixture
async def balanced(
    slack_world: SlackWorld, postgres_url: str, tmp_path: Path
) -> AsyncIterator[LoadBalanced]:
    """Two hubs on one fresh database behind the balancer; Slack talks to the balancer.

    Both read the same ``STEMHUB_SLACK_*`` (signing secret, OAuth client, the
    simulator's URL): the app installs in many workspaces, through the balancer's URL.
    """
    world = slack_world
    world.configure(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    world.files.api = world.api  # files.slack.com takes each installed workspace's token
    async with contextlib.AsyncExitStack() as stack:
        balancer = await stack.enter_async_context(Balancer().running())
        world.url = balancer.url
        settings = {
            "database_url": postgres_url,
            "signing_key": SIGNING_KEY,
            "public_url": balancer.url,
            "default_backend": "fake",
            "allow_private_networks": True,
        }
        # migrated here first, so the hubs may start together (deploy.md: one hub migrates)
        store = await Store.open(postgres_url)
        stack.push_async_callback(store.close)
        hubs = [
            await stack.enter_async_context(hub_process(tmp_path / f"hub{n}", settings))
            for n in range(HUBS)
        ]
        await asyncio.gather(*(hub.started() for hub in hubs))
        balancer.backends.extend(hub.url for hub in hubs)
        try:
            yield LoadBalanced(world, balancer, store, hubs)
        except BaseException:
            for hub in hubs:
                print(f"--- {hub.log}\n{hub.log.read_text()[-4000:]}")
            raise


def _with(text: str) -> Callable[[Routed], bool]:
    return lambda routed: text.encode() in routed.body


async def test_an_install_begun_on_one_hub_finishes_on_the_other_and_its_team_is_served(
    balanced: LoadBalanced,
) -> None:
    """The OAuth state issued by one hub verifies at the other, which stores the token;
    a /split from the new team then lands on the first hub, which never saw the callback."""
    api = balanced.api
    team, user = "T0BALANCED", "U0CAROL"

    start, callback = await balanced.install(team)
    body = slash_command(
        balanced.world.elsewhere.url + "/cdn/demo.wav vocals",
        response_url=api.response_url("carol"),
        trigger_id=api.trigger_id(),
        user=user,
    ).replace(TEAM_ID, team)
    assert (await balanced.world.post(body)).status_code == 200
    [job] = await balanced.settled(user, 1)

    [split] = balanced.balancer.taken_by(_with(user))
    assert start.backend != callback.backend
    assert split != callback.backend  # the token came from the database, not from memory
    assert job.origin.guild_id == team
    final_messages(api, [job])
    team_calls = [c for c in api.calls if c.team_id == team]
    assert team_calls and all(c.error is None for c in team_calls)
    assert {c.token for c in team_calls} == {team_calls[0].token}  # the one installed


async def test_each_step_of_a_modal_flow_may_land_on_another_hub(balanced: LoadBalanced) -> None:
    """``/split`` opens the modal on one hub, its submission starts the job on the other;
    "Another stem set" on that result is clicked on the first hub (it reads the job from
    the database) and its submission splits again on the second."""
    world, api = balanced.world, balanced.api
    user, channel = "U0DAVE", "C0STUDIO"
    api.add_channel(channel, members=(user,))
    await balanced.install(TEAM_ID)

    async def modal(post: str, trigger: str) -> dict[str, Any]:
        assert (await world.post(post)).status_code == 200
        for _ in range(int(patience(10) / 0.01)):
            opened = [
                c
                for c in api.calls_to("views.open", ok=True)
                if c.args.get("trigger_id") == trigger
            ]
            if opened:
                view = opened[0].args["view"]
                return json.loads(view) if isinstance(view, str) else dict(view)
            await asyncio.sleep(0.01)
        raise AssertionError(f"no modal for {trigger}: {api.calls_to('views.open')}")

    def submitted(view: dict[str, Any], values: dict[str, Any]) -> str:
        return view_submission(
            callback_id=MODAL_CALLBACK_ID,
            private_metadata=view["private_metadata"],
            values=values,
            user=user,
        )

    def stems(value: str) -> dict[str, Any]:
        return {STEMS_INPUT: {"type": "static_select", "selected_option": {"value": value}}}

    trigger = api.trigger_id()
    first_view = await modal(
        slash_command(
            "",
            response_url=api.response_url("dave"),
            user=user,
            channel=channel,
            trigger_id=trigger,
        ),
        trigger,
    )
    link = {URL_INPUT: {"type": "url_text_input", "value": world.elsewhere.url + "/cdn/a.wav"}}
    submit = submitted(first_view, {URL_BLOCK: link, STEMS_BLOCK: stems("BOTH")})
    assert (await world.post(submit)).status_code == 200
    [first] = await balanced.jobs_of(user, 1)

    trigger = api.trigger_id()
    status = first.delivery["status"]
    click = block_action(
        action_id=ANOTHER_SET_ACTION,
        value=first.id,
        response_url=api.response_url("dave-again"),
        user=user,
        channel=status["channel"],
        message_ts=first.delivery["summary_ts"],
        thread_ts=status["thread_ts"],
        trigger_id=trigger,
    )
    again_view = await modal(click, trigger)
    assert (await world.post(submitted(again_view, {STEMS_BLOCK: stems("VOCALS")}))).is_success
    first, second = await balanced.settled(user, 2)

    routed = balanced.balancer.routed[-4:]
    assert [r.path for r in routed] == ["/slack/events"] * 4
    command, submission, button, resubmission = (r.backend for r in routed)
    assert command != submission and submission != button and button != resubmission
    assert [MODAL_CALLBACK_ID.encode() in r.body for r in routed] == [False, True, False, True]
    assert ANOTHER_SET_ACTION.encode() in routed[2].body
    assert sorted(first.outputs) == ["instrumental", "vocals"] and list(second.outputs) == [
        "vocals"
    ]
    assert second.request.source == first.request.source
    assert second.delivery["status"]["thread_ts"] == status["thread_ts"]  # the same thread
    final_messages(api, [first, second])


async def test_a_slack_retry_landing_on_the_other_hub_starts_no_second_job(
    balanced: LoadBalanced,
) -> None:
    """Slack retries an event whose ack was slow (``X-Slack-Retry-Num``, a new signature);
    the first delivery and the retry reach different hubs at once: one job, one result."""
    world, api = balanced.world, balanced.api
    user = "U0ERIN"
    await balanced.install(TEAM_ID)
    dm = api.dm(user).id
    file = slack_file("F0BALANCED", "memo.wav", world.files.file_url("F0BALANCED", "memo.wav"))
    api.files["F0BALANCED"] = file
    message = api.user_message(dm, user=user, files=[file])
    body = event_callback(
        dm_file_message([file], user=user, channel=dm, ts=message.ts), event_id="Ev0BALANCED"
    )
    first = signed(body, SIGNING_SECRET)
    retry = {
        **signed(body, SIGNING_SECRET, timestamp=int(first["X-Slack-Request-Timestamp"]) + 3),
        "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout",
    }

    answers = await asyncio.gather(world.post(body, headers=first), world.post(body, headers=retry))
    [job] = await balanced.settled(user, 1)

    assert [a.status_code for a in answers] == [200, 200]
    deliveries = [r for r in balanced.balancer.routed if b"Ev0BALANCED" in r.body]
    assert sorted(r.headers.get("x-slack-retry-num", "") for r in deliveries) == ["", "1"]
    assert {r.backend for r in deliveries} == set(range(HUBS))
    assert job.origin.channel_id == dm
    # the hub that lost the race found the event in the database both hubs look in
    assert await balanced.store.kv_get(EVENTS_NS, "Ev0BALANCED") is not None
    final_messages(api, [job])


async def test_a_request_replayed_to_the_other_hub_starts_no_second_job(
    balanced: LoadBalanced,
) -> None:
    """The same signed ``/split`` twice (a proxy or network retrying it), on both hubs:
    the second copy is acked and dropped, whichever hub gets it."""
    world, api = balanced.world, balanced.api
    user = "U0FRANK"
    await balanced.install(TEAM_ID)
    body = slash_command(
        world.elsewhere.url + "/cdn/replayed.wav vocals",
        response_url=api.response_url("frank"),
        user=user,
        trigger_id=api.trigger_id(),
    )
    headers = signed(body, SIGNING_SECRET)

    answers = [await world.post(body, headers=headers) for _ in range(HUBS)]
    [job] = await balanced.settled(user, 1)

    assert [a.status_code for a in answers] == [200] * HUBS
    assert sorted(balanced.balancer.taken_by(_with(user))) == list(range(HUBS))
    final_messages(api, [job])
