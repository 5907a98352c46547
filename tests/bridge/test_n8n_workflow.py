"""The importable n8n workflow in docs/n8n, checked against (and run on) the live app.

Every HTTP Request node's method and URL must match a route of the running app and every
field it sends must be one the route reads. The workflow must hold on n8n 2.x defaults
(no ``$env``), have a branch for a failed job and for a missing file, and never use what
arrives at its resume URL (anyone can POST there): every request goes to the hub URL of
its Settings node, for the job id the hub itself answered. Then the workflow is played
the way n8n would run it, a forged resume first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.routing import Match
from stemhub_n8n_bridge.wire import SplitOptions, V1Job

from stemhub.http import build_app
from stemhub.testing import write_test_tone
from tests.bridge.conftest import BridgeEnv, Receiver

WORKFLOW = Path(__file__).resolve().parents[2] / "docs" / "n8n" / "split-vocals.workflow.json"


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(WORKFLOW.read_text())
    return data


def node(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [n for n in workflow["nodes"] if n["name"] == name]
    (only,) = found
    return only


HUB = "$('Settings').item.json.hubUrl"
JOB = "$('Split stems').item.json.id"


def path_of(url: str, job_id: str = "job1") -> str:
    """The path an HTTP Request node requests (its URL always starts at the hub URL)."""
    prefix = "={{ " + HUB + " }}"
    assert url.startswith(prefix), url
    return url[len(prefix) :].replace("{{ " + JOB + " }}", job_id)


def http_nodes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.httpRequest"]


def targets(workflow: dict[str, Any], name: str) -> list[list[str]]:
    branches = workflow["connections"][name]["main"]
    return [[t["node"] for t in branch] for branch in branches]


def test_the_workflow_is_importable_and_wired_for_n8n_2() -> None:
    workflow = load()
    names = {n["name"] for n in workflow["nodes"]}
    for source, outputs in workflow["connections"].items():
        assert source in names
        for branch in outputs["main"]:
            assert all(target["node"] in names for target in branch)
    text = json.dumps(workflow)
    assert "$env" not in text, "n8n 2.x denies $env in expressions"
    wait = node(workflow, "Wait for the hub")
    assert wait["parameters"]["resume"] == "webhook"
    assert targets(workflow, "Found the song?") == [["Split stems"], ["No song"]]
    assert node(workflow, "Read the song")["alwaysOutputData"] is True
    assert targets(workflow, "Finished?") == [["Completed?"], ["Wait for the hub"]]
    assert targets(workflow, "Completed?") == [["Download the vocals"], ["Job failed"]]
    assert node(workflow, "Job failed")["type"] == "n8n-nodes-base.stopAndError"


def test_nothing_from_the_resume_url_reaches_a_request() -> None:
    """A forged POST to the resume URL cannot choose where the API key is sent."""
    workflow = load()
    for http in http_nodes(workflow):
        params = http["parameters"]
        path_of(params["url"])
        assert "$json.body" not in json.dumps(params) and "$('Wait" not in json.dumps(params)
        assert params["genericAuthType"] == "httpHeaderAuth"


async def test_every_request_matches_a_live_route_and_field(env: BridgeEnv) -> None:
    workflow = load()
    app = build_app(env.hub)
    for http in http_nodes(workflow):
        params = http["parameters"]
        scope = {"type": "http", "method": params["method"], "path": path_of(params["url"])}
        assert any(route.matches(scope)[0] is Match.FULL for route in app.routes), scope
    split = node(workflow, "Split stems")["parameters"]
    assert split["method"] == "POST" and split["contentType"] == "multipart-form-data"
    sent = {p["name"] for p in split["bodyParameters"]["parameters"]}
    form_fields = set(SplitOptions.model_fields) | {"file"}
    assert sent <= form_fields, sent - form_fields
    binary = [p for p in split["bodyParameters"]["parameters"] if p.get("parameterType")]
    assert [p["name"] for p in binary] == ["file"]
    for name, field in (("Finished?", "finished"), ("Completed?", "status")):
        (condition,) = next(iter(node(workflow, name)["parameters"]["conditions"].values()))
        assert condition["value1"] == "={{ $json." + field + " }}"
        assert field in V1Job.model_fields


async def test_playing_the_workflow_with_a_forged_resume_first(
    env: BridgeEnv, receiver: Receiver, tmp_path: Path
) -> None:
    workflow = load()
    song = write_test_tone(tmp_path / "song.wav")
    split = node(workflow, "Split stems")["parameters"]
    resume_url = receiver.url + "/hook/resume"
    files: dict[str, Any] = {}
    data: dict[str, str] = {}
    for param in split["bodyParameters"]["parameters"]:
        if param.get("parameterType") == "formBinaryData":
            files[param["name"]] = ("song.wav", song.read_bytes(), "audio/wav")
        elif param["value"] == "={{ $execution.resumeUrl }}":
            data[param["name"]] = resume_url
        else:
            data[param["name"]] = param["value"]
    headers = {"X-API-Key": env.token}
    env.controls.delay_s = 0.5
    answer = await env.client.post(
        env.url + path_of(split["url"]), files=files, data=data, headers=headers
    )
    assert answer.status_code == 202
    job_id = answer.json()["id"]
    ask = node(workflow, "Ask the hub")["parameters"]

    # a forged job.completed wakes the Wait node at once: the workflow asks the hub
    early = (await env.client.get(env.url + path_of(ask["url"], job_id), headers=headers)).json()
    assert early["finished"] is False, "Finished? sends it back to the Wait node"

    await receiver.wait_for(1)
    done = (await env.client.get(env.url + path_of(ask["url"], job_id), headers=headers)).json()
    assert done["finished"] is True and done["status"] == "completed"
    download = node(workflow, "Download the vocals")["parameters"]
    vocals = await env.client.get(env.url + path_of(download["url"], job_id), headers=headers)
    assert vocals.status_code == 200
    assert vocals.headers["content-type"] == "audio/mpeg"
    assert vocals.content == song.read_bytes()
