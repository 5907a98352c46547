"""``/openapi.json`` and the bridge's route table agree, both ways, on the served app."""

from __future__ import annotations

from typing import Any

from stemhub_n8n_bridge.openapi import GUARDED, WITH_BODY, DocumentedRoute
from stemhub_n8n_bridge.routes import bridge_routes

from stemhub.http import plugin_routes
from tests.bridge.conftest import BridgeEnv

METHODS = {"get", "put", "post", "delete", "patch"}


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def _served(env: BridgeEnv) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the bridge registered with the hub's app."""
    served: set[tuple[str, str]] = set()
    for route in plugin_routes(env.hub):
        assert isinstance(route, DocumentedRoute), f"{route!r} has no OpenAPI operation"
        methods = {m for m in route.methods or () if m != "HEAD"}
        served |= {(method, route.openapi_path) for method in methods}
    return served


async def test_every_route_is_documented_and_every_documented_path_is_routed(
    env: BridgeEnv,
) -> None:
    doc = (await env.client.get("/openapi.json")).json()
    documented = _operations(doc)
    served = _served(env)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    assert len(documented) == 21

    for method, path in sorted(documented):
        concrete = path.replace("{stem}", "vocals").replace("{", "x").replace("}", "x")
        answer = await env.client.request(method, concrete, headers=env.auth)
        # the router's own refusals are plain text; every handler answers JSON, audio or HTML
        unrouted = answer.status_code in (404, 405) and answer.headers.get(
            "content-type", ""
        ).startswith("text/plain")
        assert not unrouted, f"{method} {path} is documented but the app does not route it"


async def test_every_operation_documents_the_errors_its_guard_and_body_can_answer(
    env: BridgeEnv,
) -> None:
    doc = (await env.client.get("/openapi.json")).json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            statuses = {int(s) for s in op["responses"]}
            assert "default" not in op["responses"]
            if op.get("security") != [] and path.startswith(("/v1", "/api/v1")):
                assert set(GUARDED) <= statuses, f"{method} {path}"
            if "requestBody" in op:
                # /api/v1 answers a body too large with 400 FILE_TOO_LARGE, as StemSplit does
                body_errors = set(WITH_BODY) if path.startswith("/v1") else {400, 408}
                assert body_errors <= statuses, f"{method} {path}"
            for status in statuses - {200, 201, 202, 307}:
                schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}


async def test_paths_and_path_parameters_come_from_the_route_table(env: BridgeEnv) -> None:
    table = bridge_routes(env.bridge)
    doc = (await env.client.get("/openapi.json")).json()
    assert {r.openapi_path for r in table if isinstance(r, DocumentedRoute)} == set(doc["paths"])
    assert "/v1/jobs/{job_id}" in doc["paths"]
    params = doc["paths"]["/v1/jobs/{job_id}/stems/{stem}"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in params] == [("job_id", "path"), ("stem", "path")]
