"""schemathesis walks the document's links against the live bridge: create, read, delete.

The links of ``/openapi.json`` (a created job to reading it and downloading its stems, a
created hook or webhook to reading and removing it) make schemathesis's state machine
chain calls with real ids, so the run covers created jobs and hooks, not only 404s.
The bodies of the four creating calls are set to ones the hub accepts (a song and a
receiver on loopback; ``test_openapi_fuzz`` fuzzes those bodies), their query and
headers stay generated. Every answer must be documented, match its schema and never be
a 5xx.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tests.bridge.live import LiveBridge

pytestmark = pytest.mark.slow

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
LINKED = {
    "split": {"getJobV1", "downloadStemsZip", "downloadStem"},
    "getJobV1": {"downloadStemsZip", "downloadStem"},
    "createJob": {"getJob"},
    "subscribeHook": {"getHook", "unsubscribeHook"},
    "createWebhook": {"deleteWebhook"},
}


@pytest.fixture(scope="module")
def live_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBridge]:
    bridge = LiveBridge(tmp_path_factory.mktemp("stateful")).start()
    try:
        yield bridge
    finally:
        bridge.stop()


def _links(doc: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for item in doc["paths"].values():
        for op in item.values():
            for response in op["responses"].values():
                for link in response.get("links", {}).values():
                    found.setdefault(op["operationId"], set()).add(link["operationId"])
    return found


def test_the_document_links_creations_to_their_next_calls(live_bridge: LiveBridge) -> None:
    schema = schemathesis.openapi.from_url(live_bridge.url + "/openapi.json")
    assert _links(schema.raw_schema) == LINKED


def test_stateful_walks_answer_as_documented(live_bridge: LiveBridge) -> None:
    schema = schemathesis.openapi.from_url(live_bridge.url + "/openapi.json")
    # only the document's own links: no links inferred from Location headers or ids
    schema.config.phases.stateful.inference.algorithms = []
    headers = {"Authorization": f"Bearer {live_bridge.token}"}
    calls: list[tuple[str, int]] = []
    song, receiver = live_bridge.song_url, live_bridge.receiver_url
    accepted: dict[str, dict[str, Any]] = {
        "split": {"url": song, "output_format": "WAV"},
        "createJob": {"sourceUrl": song, "outputFormat": "WAV"},
        "subscribeHook": {"target_url": receiver},
        "createWebhook": {"url": receiver, "events": ["job.completed"]},
    }

    class Walk(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            body = accepted.get(case.operation.definition.raw["operationId"])
            if body is not None:
                case.media_type = "application/json"
                case.body = dict(body)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers, "timeout": 20}

        def after_call(self, response: Any, case: Any) -> None:
            calls.append((case.operation.definition.raw["operationId"], response.status_code))

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers)

    Walk.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=4,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    ok = {op for op, status in calls if 200 <= status < 300}
    seen = Counter(calls)
    # the walks followed links from created jobs and hooks to their own routes
    assert {"getJobV1", "getJob", "downloadStemsZip", "downloadStem"} & ok, seen
    assert {"getHook", "unsubscribeHook", "deleteWebhook"} & ok, seen
