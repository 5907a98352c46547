"""The importable n8n workflow in docs/n8n, checked against (and run on) the live app.

Every HTTP Request node's method and URL must match a route of the running app, every
field it sends must be one the route reads, and every expression that reads the Wait
node's webhook must name fields the webhook body has. Then the workflow is played the
way n8n would run it: the multipart request with the node's fields, the resume URL as
``callback_url``, the download URL taken from the webhook body by the node's expression.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from starlette.routing import Match
from stemhub_n8n_bridge.v1_api import SplitOptions
from stemhub_n8n_bridge.wire import V1Event

from stemhub.http import build_app
from stemhub.testing import write_test_tone
from tests.bridge.conftest import BridgeEnv, Receiver

WORKFLOW = Path(__file__).resolve().parents[2] / "docs" / "n8n" / "split-vocals.workflow.json"
EXPR = re.compile(r"^=\{\{\s*(.+?)\s*\}\}(.*)$")


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(WORKFLOW.read_text())
    return data


def node(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [n for n in workflow["nodes"] if n["name"] == name]
    return found


def path_of(url: str) -> str:
    """The path an n8n URL expression ends up requesting (placeholders for expressions)."""
    match = EXPR.match(url)
    assert match, url
    expression, rest = match.groups()
    if expression == "$env.STEMHUB_URL":
        return rest
    return ""


def field_path(expression: str) -> list[str]:
    match = EXPR.match(expression)
    assert match
    return match.group(1).removeprefix("$json.").split(".")


def model_has(model: Any, path: list[str]) -> bool:
    """Whether ``path`` (``body.data.stems.vocals.download_url``) exists in the schema."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    current = schema
    for part in path:
        while "$ref" in current:
            current = defs[current["$ref"].rsplit("/", 1)[1]]
        if "anyOf" in current:
            current = next(s for s in current["anyOf"] if s.get("type") != "null")
            while "$ref" in current:
                current = defs[current["$ref"].rsplit("/", 1)[1]]
        if part in current.get("properties", {}):
            current = current["properties"][part]
        elif isinstance(current.get("additionalProperties"), dict):
            current = current["additionalProperties"]
        else:
            return False
    return True


def test_the_workflow_is_importable_and_wired() -> None:
    workflow = load()
    names = {n["name"] for n in workflow["nodes"]}
    for source, outputs in workflow["connections"].items():
        assert source in names
        for branch in outputs["main"]:
            assert all(target["node"] in names for target in branch)
    wait = node(workflow, "Wait for the stems")
    assert wait["parameters"]["resume"] == "webhook"
    assert wait["parameters"]["httpMethod"] == "POST"


async def test_every_request_matches_a_live_route_and_field(env: BridgeEnv) -> None:
    workflow = load()
    app = build_app(env.hub)
    split = node(workflow, "Split stems")["parameters"]
    assert split["method"] == "POST" and split["contentType"] == "multipart-form-data"
    scope = {"type": "http", "method": "POST", "path": path_of(split["url"])}
    assert any(route.matches(scope)[0] is Match.FULL for route in app.routes)
    sent = {p["name"] for p in split["bodyParameters"]["parameters"]}
    form_fields = set(SplitOptions.model_fields) | {"file"}
    assert sent <= form_fields, sent - form_fields
    binary = [p for p in split["bodyParameters"]["parameters"] if p.get("parameterType")]
    assert [p["name"] for p in binary] == ["file"]

    download = node(workflow, "Download the vocals")["parameters"]
    assert download["method"] == "GET"
    expression = field_path(download["url"])
    assert expression[0] == "body"
    assert model_has(V1Event, expression[1:]), expression
    assert download["options"]["response"]["response"]["responseFormat"] == "file"
    for name in ("Split stems", "Download the vocals"):
        assert node(workflow, name)["parameters"]["genericAuthType"] == "httpHeaderAuth"


async def test_playing_the_workflow_downloads_the_vocals(
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
    answer = await env.client.post(
        env.url + path_of(split["url"]), files=files, data=data, headers=headers
    )
    assert answer.status_code == 202

    (post,) = await receiver.wait_for(1)
    resumed: dict[str, Any] = {"body": json.loads(post.body)}
    value: Any = resumed
    for part in field_path(node(workflow, "Download the vocals")["parameters"]["url"]):
        value = value[part]
    vocals = await env.client.get(value, headers=headers)
    assert vocals.status_code == 200
    assert vocals.headers["content-type"] == "audio/mpeg"
    assert vocals.content == song.read_bytes()
