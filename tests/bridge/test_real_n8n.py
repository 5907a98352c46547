"""The stemhub node and the shipped workflow, run by a real n8n against a real hub.

n8n (2.8.4, from npm, see plugins/n8n_bridge/n8n-runtime) runs offline on loopback with
the built node package loaded as a custom extension; workflows are created, activated and
read back through n8n's public REST API, and each execution's status and output checked:
a split with "wait for completion" then a stem download, a job that fails, the same two
with jobs longer than the node's first wait (the execution waits and the hub's signed
callback resumes it; a forged resume is refused), the Stemhub Trigger (subscribed on
activation, refusing a forged delivery, unsubscribed on deactivation), and the shipped
HTTP Request workflow with a forged resume first.

Skipped, saying why, unless ``STEMHUB_N8N_HOME`` names an n8n install (``.ci/run`` sets
it) and the node package is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stemhub.testing import free_port, patience, write_test_tone
from tests.bridge.conftest import BridgeEnv, open_bridge, run_receiver, serve

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugins" / "n8n_bridge" / "n8n-nodes-stemhub"
WORKFLOW = ROOT / "docs" / "n8n" / "split-vocals.workflow.json"
N8N_HOME = os.environ.get("STEMHUB_N8N_HOME", "")
N8N_BIN = Path(N8N_HOME) / "node_modules" / ".bin" / "n8n"
FIRST_WAIT_S = 3
"""How long the node lets the hub hold its split request (FIRST_WAIT_S in resume.ts)."""

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not N8N_HOME or not N8N_BIN.exists(),
        reason="n8n is not installed: set STEMHUB_N8N_HOME to an `npm ci` of "
        "plugins/n8n_bridge/n8n-runtime (.ci/run does)",
    ),
    pytest.mark.skipif(
        not (PACKAGE / "dist" / "nodes" / "Stemhub" / "Stemhub.node.js").exists(),
        reason="the n8n node package is not built: npm ci && npm run build in " + str(PACKAGE),
    ),
]


@dataclass
class N8n:
    url: str
    api: httpx.AsyncClient
    home: Path

    async def workflow(self, body: dict[str, Any], *, activate: bool = True) -> str:
        created = await self.api.post("/api/v1/workflows", json=body)
        assert created.status_code == 200, created.text
        workflow_id = str(created.json()["id"])
        if activate:
            answer = await self.api.post(f"/api/v1/workflows/{workflow_id}/activate")
            assert answer.status_code == 200, answer.text
        return workflow_id

    async def executions(self, workflow_id: str, status: str = "") -> list[dict[str, Any]]:
        params = {"workflowId": workflow_id, "includeData": "true", "limit": 50}
        if status:
            params["status"] = status
        answer = await self.api.get("/api/v1/executions", params=params)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])

    async def finished_execution(
        self, workflow_id: str, *, count: int = 1, within_s: float = 120
    ) -> dict[str, Any]:
        """The newest execution once ``count`` executions of the workflow ended."""
        async with asyncio.timeout(within_s):
            while True:
                done = [
                    e
                    for e in await self.executions(workflow_id)
                    if e["status"] not in ("new", "running", "waiting")
                ]
                if len(done) >= count:
                    return max(done, key=lambda e: int(e["id"]))
                await asyncio.sleep(0.5)

    async def next_execution_id(self, workflow_id: str) -> str:
        """The id n8n gives the workflow's next execution (ids are sequential)."""
        return str(1 + max((int(e["id"]) for e in await self.executions(workflow_id)), default=0))

    async def waiting(self, execution_id: str) -> dict[str, Any]:
        """The execution once n8n has saved it as waiting (its list shows only ended ones)."""
        async with asyncio.timeout(patience(60)):
            while True:
                answer = await self.api.get(f"/api/v1/executions/{execution_id}")
                if answer.status_code == 200:
                    execution: dict[str, Any] = answer.json()
                    if execution["status"] == "waiting":
                        return execution
                    assert execution["status"] in ("new", "running"), answer.text
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def run_n8n(tmp_path: Path) -> AsyncIterator[N8n]:
    port = free_port()
    home = tmp_path / "n8n-home"
    (home / ".n8n-files").mkdir(parents=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "N8N_USER_FOLDER": str(home),
        "N8N_PORT": str(port),
        # the task runners' broker listens on 5679 by default: a second n8n on the machine
        # (another test run, a developer's own) made this one exit during its migrations
        "N8N_RUNNERS_BROKER_PORT": str(free_port()),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        "N8N_PROTOCOL": "http",
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/",
        "N8N_CUSTOM_EXTENSIONS": str(PACKAGE / "dist"),
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_SECURE_COOKIE": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "N8N_LOG_LEVEL": "warn",
        "NODE_ENV": "production",
    }
    log = (tmp_path / "n8n.log").open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before any request
        [str(N8N_BIN), "start"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as session:
            owner = {
                "email": "owner@example.com",
                "firstName": "Test",
                "lastName": "Owner",
                "password": "Passw0rd-for-tests",
            }
            async with asyncio.timeout(patience(240)):
                while True:
                    if process.poll() is not None:
                        log_text = (tmp_path / "n8n.log").read_text()[-3000:]
                        raise RuntimeError(f"n8n exited ({process.returncode}): {log_text}")
                    with contextlib.suppress(httpx.HTTPError):
                        # until it is up, n8n answers 200 "n8n is starting up" in HTML
                        setup = await session.post("/rest/owner/setup", json=owner)
                        if setup.headers.get("content-type", "").startswith("application/json"):
                            break
                    await asyncio.sleep(1)
            assert setup.status_code == 200, setup.text
            key = await session.post(
                "/rest/api-keys",
                json={"label": "tests", "scopes": ["workflow:read"], "expiresAt": None},
            )
            assert key.status_code == 200, key.text
            token = key.json()["data"]["rawApiKey"]
        headers = {"X-N8N-API-KEY": token}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api:
            yield N8n(url, api, home)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[BridgeEnv, N8n, dict[str, str]]]:
    async with open_bridge(tmp_path / "hub") as env, run_n8n(tmp_path) as n8n:
        stemhub = await n8n.api.post(
            "/api/v1/credentials",
            json={
                "name": "stemhub",
                "type": "stemhubApi",
                "data": {
                    "hubUrl": env.url,
                    "apiKey": env.token,
                    "webhookSecret": env.issued.webhook_secret,
                    "allowedHttpRequestDomains": "all",
                },
            },
        )
        assert stemhub.status_code == 200, stemhub.text
        header = await n8n.api.post(
            "/api/v1/credentials",
            json={
                "name": "X-API-Key",
                "type": "httpHeaderAuth",
                "data": {"name": "X-API-Key", "value": env.token},
            },
        )
        assert header.status_code == 200, header.text
        yield env, n8n, {"stemhubApi": stemhub.json()["id"], "httpHeaderAuth": header.json()["id"]}


def _node(name: str, kind: str, parameters: dict[str, Any], x: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "type": kind,
        "typeVersion": extra.pop("version", 1),
        "position": [x, 0],
        "parameters": parameters,
        **extra,
    }


def _webhook(path: str, mode: str = "lastNode") -> dict[str, Any]:
    return _node(
        "Webhook",
        "n8n-nodes-base.webhook",
        {"httpMethod": "POST", "path": path, "responseMode": mode, "options": {}},
        0,
        version=2,
        webhookId=str(uuid.uuid4()),
    )


def _chain(name: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    connections = {
        a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
        for a, b in itertools.pairwise(nodes)
    }
    return {
        "name": name,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1"},
    }


async def _post(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=120) as client:
        return await client.post(url, **kwargs)


def _run_data(execution: dict[str, Any], node: str) -> list[dict[str, Any]]:
    runs = execution["data"]["resultData"]["runData"][node]
    return list(runs[-1]["data"]["main"][0])


@dataclass
class Thief:
    """A server that records every request it gets, whatever the method and path."""

    url: str
    requests: list[tuple[str, str, dict[str, str]]]


@contextlib.asynccontextmanager
async def run_thief() -> AsyncIterator[Thief]:
    thief = Thief("", [])

    async def record(request: Request) -> Response:
        thief.requests.append((request.method, request.url.path, dict(request.headers)))
        return Response(b"RIFF", media_type="audio/wav")

    methods = ["GET", "POST", "PUT", "HEAD"]
    app = Starlette(routes=[Route("/{rest:path}", record, methods=methods)])
    async with serve(app) as url:
        thief.url = url
        yield thief


@contextlib.asynccontextmanager
async def slow_missing_song(delay_s: float) -> AsyncIterator[str]:
    """The URL of a song whose server answers 404 after ``delay_s``."""

    async def missing(_request: Request) -> Response:
        await asyncio.sleep(delay_s)
        return Response(status_code=404)

    async with serve(Starlette(routes=[Route("/song.mp3", missing)])) as url:
        yield f"{url}/song.mp3"


def _split(cred: dict[str, Any], url: str, **parameters: Any) -> dict[str, Any]:
    values = {"operation": "split", "source": "url", "url": url, "waitForCompletion": True}
    return _node("Split", "CUSTOM.stemhub", values | parameters, 200, credentials=cred)


async def test_split_wait_download_and_a_failed_job(
    stack: tuple[BridgeEnv, N8n, dict[str, str]], tmp_path: Path
) -> None:
    _env, n8n, creds = stack
    song = write_test_tone(tmp_path / "song.wav")
    cred = {"stemhubApi": {"id": creds["stemhubApi"], "name": "stemhub"}}
    async with run_receiver(files={"song.wav": song}) as files:
        split = _node(
            "Split",
            "CUSTOM.stemhub",
            {
                "operation": "split",
                "source": "url",
                "url": f"{files.url}/files/song.wav",
                "stems": "BOTH",
                "outputFormat": "WAV",
                "waitForCompletion": True,
            },
            200,
            credentials=cred,
        )
        download = _node(
            "Download",
            "CUSTOM.stemhub",
            {
                "operation": "downloadStem",
                "jobId": "={{ $json.id }}",
                "stem": "vocals",
                "outputBinaryPropertyName": "vocals",
            },
            400,
            credentials=cred,
        )
        workflow = await n8n.workflow(
            _chain("split and download", [_webhook("split"), split, download])
        )
        answer = await _post(f"{n8n.url}/webhook/split", json={})
        assert answer.status_code == 200, answer.text
        execution = await n8n.finished_execution(workflow)
    assert execution["status"] == "success"
    (job,) = _run_data(execution, "Split")
    assert job["json"]["status"] == "completed" and set(job["json"]["stems"]) == {
        "vocals",
        "instrumental",
    }
    (stem,) = _run_data(execution, "Download")
    assert stem["binary"]["vocals"]["mimeType"] == "audio/wav"
    assert stem["binary"]["vocals"]["fileName"] == "song - vocals.wav"

    failing = _node(
        "Split",
        "CUSTOM.stemhub",
        {
            "operation": "split",
            "source": "url",
            "url": "http://127.0.0.1:9/gone.mp3",
            "waitForCompletion": True,
        },
        200,
        credentials=cred,
    )
    broken = await n8n.workflow(_chain("a failed job", [_webhook("fail"), failing]))
    await _post(f"{n8n.url}/webhook/fail", json={})
    failed = await n8n.finished_execution(broken)
    assert failed["status"] == "error"
    message = json.dumps(failed["data"]["resultData"]["error"])
    assert "could not split the song" in message, message


async def test_a_long_split_waits_for_the_callback_and_refuses_a_forged_resume(
    stack: tuple[BridgeEnv, N8n, dict[str, str]], tmp_path: Path
) -> None:
    env, n8n, creds = stack
    song = write_test_tone(tmp_path / "song.wav")
    cred = {"stemhubApi": {"id": creds["stemhubApi"], "name": "stemhub"}}
    # longer than the node's first wait, with time left to forge a resume meanwhile
    env.controls.delay_s = FIRST_WAIT_S + patience(3)
    async with run_receiver(files={"song.wav": song}) as files, run_thief() as thief:
        split = _split(cred, f"{files.url}/files/song.wav", stems="BOTH", outputFormat="WAV")
        download = _node(
            "Download",
            "CUSTOM.stemhub",
            {"operation": "downloadStem", "jobId": "={{ $json.id }}", "stem": "vocals"},
            400,
            credentials=cred,
        )
        nodes = [_webhook("long", mode="onReceived"), split, download]
        workflow = await n8n.workflow(_chain("a long split", nodes))
        execution_id = await n8n.next_execution_id(workflow)
        started = await _post(f"{n8n.url}/webhook/long", json={})
        assert started.status_code == 200, started.text
        waiting = await n8n.waiting(execution_id)
        (job,) = (await env.client.get("/v1/jobs", headers=env.auth)).json()["jobs"]
        assert not job["finished"], "the job outlasted the first wait"

        resume = f"{n8n.url}/webhook-waiting/{waiting['id']}"
        stolen = {"download_url": f"{thief.url}/steal", "url": f"{thief.url}/steal"}
        done = {"status": "completed", "finished": True, "stems": {"vocals": stolen}}
        forged = json.dumps({"type": "job.completed", "data": job | done})
        signed_elsewhere = {
            "webhook-id": "msg_forged",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,c2lnbmVkIHdpdGggYW5vdGhlciBzZWNyZXQgYnkgdGhlIHRoaWVmIQ==",
        }
        for headers in ({}, signed_elsewhere):
            refused = await _post(resume, content=forged, headers=headers)
            assert refused.status_code == 401, refused.text
        still = await n8n.api.get(f"/api/v1/executions/{execution_id}")
        assert still.json()["status"] == "waiting", "a forged resume did not resume it"

        execution = await n8n.finished_execution(workflow, within_s=patience(120))
    assert thief.requests == [], "nothing, and no API key, went to the forged address"
    assert execution["id"] == waiting["id"]
    assert execution["status"] == "success", json.dumps(execution["data"]["resultData"])
    (out,) = _run_data(execution, "Split")
    hub_job = (await env.client.get(f"/v1/jobs/{job['id']}", headers=env.auth)).json()
    assert out["json"]["id"] == job["id"] and out["json"]["status"] == "completed"
    assert set(out["json"]["stems"]) == {"vocals", "instrumental"}
    vocals = out["json"]["stems"]["vocals"]
    assert vocals["download_url"] == hub_job["stems"]["vocals"]["download_url"]
    (stem,) = _run_data(execution, "Download")
    assert stem["binary"]["data"]["fileName"] == "song - vocals.wav"


async def test_a_long_split_that_fails_ends_the_execution_with_the_hub_message(
    stack: tuple[BridgeEnv, N8n, dict[str, str]],
) -> None:
    env, n8n, creds = stack
    cred = {"stemhubApi": {"id": creds["stemhubApi"], "name": "stemhub"}}
    async with slow_missing_song(FIRST_WAIT_S + patience(2)) as url:
        after = _node("After", "n8n-nodes-base.noOp", {}, 400)
        nodes = [_webhook("fails-later", mode="onReceived"), _split(cred, url), after]
        workflow = await n8n.workflow(_chain("a split that fails later", nodes))
        execution_id = await n8n.next_execution_id(workflow)
        await _post(f"{n8n.url}/webhook/fails-later", json={})
        waiting = await n8n.waiting(execution_id)
        failed = await n8n.finished_execution(workflow, within_s=patience(120))
    assert failed["id"] == waiting["id"]
    assert failed["status"] == "error"
    (job,) = (await env.client.get("/v1/jobs", headers=env.auth)).json()["jobs"]
    assert job["status"] == "failed"
    message = json.dumps(failed["data"]["resultData"]["error"])
    assert f"could not split the song: {job['error']['message']}" in message, message


@pytest.mark.slow
async def test_a_split_past_max_wait_goes_on_with_an_item_that_says_so(
    stack: tuple[BridgeEnv, N8n, dict[str, str]], tmp_path: Path
) -> None:
    """n8n resumes a wait-till without running the node: what goes on is its timeout item."""
    env, n8n, creds = stack
    song = write_test_tone(tmp_path / "song.wav")
    cred = {"stemhubApi": {"id": creds["stemhubApi"], "name": "stemhub"}}
    env.controls.delay_s = 3600
    async with run_receiver(files={"song.wav": song}) as files:
        split = _split(cred, f"{files.url}/files/song.wav", maxWaitMinutes=1)
        after = _node("After", "n8n-nodes-base.noOp", {}, 400)
        nodes = [_webhook("too-long", mode="onReceived"), split, after]
        workflow = await n8n.workflow(_chain("a split past max wait", nodes))
        execution_id = await n8n.next_execution_id(workflow)
        await _post(f"{n8n.url}/webhook/too-long", json={"song": "the trigger's item"})
        waiting = await n8n.waiting(execution_id)
        # n8n looks for due executions once a minute
        ended = await n8n.finished_execution(workflow, within_s=patience(150))
    assert ended["id"] == waiting["id"]
    (job,) = (await env.client.get("/v1/jobs", headers=env.auth)).json()["jobs"]
    (item,) = _run_data(ended, "After")
    assert item["json"]["error"] == f'Job {job["id"]} did not finish within "Max Wait" (1 min)'
    assert item["json"]["job"]["id"] == job["id"]


async def test_trigger_subscribes_verifies_and_unsubscribes(
    stack: tuple[BridgeEnv, N8n, dict[str, str]], tmp_path: Path
) -> None:
    env, n8n, creds = stack
    cred = {"stemhubApi": {"id": creds["stemhubApi"], "name": "stemhub"}}
    trigger = _node(
        "Stemhub Trigger",
        "CUSTOM.stemhubTrigger",
        {"events": ["job.completed"]},
        0,
        credentials=cred,
        webhookId=str(uuid.uuid4()),
    )
    noop = _node("Done", "n8n-nodes-base.noOp", {}, 200)
    workflow = await n8n.workflow(_chain("on job completed", [trigger, noop]))
    hooks = (await env.client.get("/v1/hooks", headers=env.auth)).json()["hooks"]
    assert len(hooks) == 1 and hooks[0]["target_url"].startswith(n8n.url + "/webhook/")
    target = hooks[0]["target_url"]

    forged = await _post(
        target,
        content=b'{"type":"job.completed","data":{"id":"forged"}}',
        headers={"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
    )
    assert forged.status_code == 401

    song = write_test_tone(tmp_path / "song.wav")
    made = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "10"},
        headers=env.auth,
    )
    execution = await n8n.finished_execution(workflow)
    assert execution["status"] == "success"
    (event,) = _run_data(execution, "Stemhub Trigger")
    assert event["json"]["type"] == "job.completed"
    assert event["json"]["data"]["id"] == made.json()["id"]
    assert len(await n8n.executions(workflow)) == 1, "the forged delivery started nothing"

    off = await n8n.api.post(f"/api/v1/workflows/{workflow}/deactivate")
    assert off.status_code == 200, off.text
    assert (await env.client.get("/v1/hooks", headers=env.auth)).json()["hooks"] == []


async def test_the_shipped_workflow_on_n8n_defaults_ignores_a_forged_resume(
    stack: tuple[BridgeEnv, N8n, dict[str, str]], tmp_path: Path
) -> None:
    env, n8n, creds = stack
    shipped = json.loads(WORKFLOW.read_text())
    song = write_test_tone(n8n.home / ".n8n-files" / "song.wav")
    for node in shipped["nodes"]:
        if node["type"] == "n8n-nodes-base.manualTrigger":
            trigger = _webhook("shipped", mode="onReceived")
            old = node["name"]
            node.clear()
            node.update(trigger)
            shipped["connections"]["Webhook"] = shipped["connections"].pop(old)
        elif node["name"] == "Settings":
            for item in node["parameters"]["assignments"]["assignments"]:
                item["value"] = env.url if item["name"] == "hubUrl" else str(song)
        elif "credentials" in node:
            node["credentials"] = {
                "httpHeaderAuth": {"id": creds["httpHeaderAuth"], "name": "X-API-Key"}
            }
    shipped["pinData"] = {}
    workflow = await n8n.workflow(
        {k: shipped[k] for k in ("name", "nodes", "connections", "settings")}
    )

    env.controls.delay_s = 3.0
    # execution ids are sequential: the attacker's guess is the next one
    next_id = 1 + max((int(e["id"]) for e in await n8n.executions(workflow)), default=0)
    async with run_receiver() as thief, httpx.AsyncClient() as attacker:
        started = await attacker.post(f"{n8n.url}/webhook/shipped", json={})
        assert started.status_code == 200, started.text
        forged = {
            "type": "job.completed",
            "data": {"id": "x", "stems": {"vocals": {"download_url": thief.url + "/hook/steal"}}},
        }
        async with asyncio.timeout(patience(60)):
            while True:
                resumed = await attacker.post(f"{n8n.url}/webhook-waiting/{next_id}", json=forged)
                if resumed.status_code == 200:
                    break
                await asyncio.sleep(0.1)
        execution = await n8n.finished_execution(workflow, within_s=patience(180))
    assert thief.posts == [], "nothing was sent to the forged address"
    assert execution["status"] == "success", json.dumps(
        execution["data"]["resultData"].get("error")
    )
    (vocals,) = _run_data(execution, "Download the vocals")
    assert "vocals" in vocals["binary"]
    asks = execution["data"]["resultData"]["runData"]["Ask the hub"]
    assert len(asks) >= 2, "the forged resume made it ask the hub, which said: not finished"
