"""API keys from the CLI (hashed at rest), plus health, metrics and the docs page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from stemhub_n8n_bridge.keys import ApiKeys
from typer.testing import CliRunner

from stemhub import open_plugin_state
from stemhub._store import Store, kv
from stemhub.cli import app
from stemhub.testing import make_settings, write_test_tone
from tests.bridge.conftest import BridgeEnv, open_bridge


def test_keys_create_list_revoke_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("STEMHUB_DATA_DIR", str(data))
    monkeypatch.setenv("COLUMNS", "200")
    shell = CliRunner()
    made = shell.invoke(app, ["keys", "create", "--name", "zapier", "--quota", "50/day"])
    assert made.exit_code == 0, made.output
    token = re.search(r"key:\s+(sk_live_\S+)", made.output)
    key_id = re.search(r"id:\s+(\S+)", made.output)
    assert token and key_id
    listed = shell.invoke(app, ["keys", "list"])
    assert key_id[1] in listed.output and "zapier" in listed.output and "50/day" in listed.output
    assert token[1] not in listed.output
    assert shell.invoke(app, ["keys", "revoke", key_id[1]]).exit_code == 0
    assert shell.invoke(app, ["keys", "revoke", "nope"]).exit_code == 2
    bad = shell.invoke(app, ["keys", "create", "--quota", "lots"])
    assert bad.exit_code == 2 and "INVALID_REQUEST" in bad.output

    async def stored() -> list[str]:
        store = await Store.open(f"sqlite:///{data / 'stemhub.db'}")
        try:
            async with store.engine.connect() as conn:
                return list((await conn.execute(sa.select(kv.c.value))).scalars())
        finally:
            await store.close()

    import asyncio

    values = asyncio.run(stored())
    assert values and all(token[1] not in value for value in values)
    assert any('"revoked_at": null' not in v and key_id[1] in v for v in values)


async def test_metrics_count_jobs_durations_and_webhook_deliveries(
    env: BridgeEnv, tmp_path: Path
) -> None:
    from tests.bridge.conftest import run_receiver

    song = write_test_tone(tmp_path / "song.wav")
    async with run_receiver() as receiver:
        await env.client.post(
            "/v1/split",
            files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
            data={"wait": "10", "callback_url": receiver.url + "/hook/m"},
            headers=env.auth,
        )
        await receiver.wait_for(1)
        for _ in range(50):
            text = (await env.client.get("/metrics")).text
            if 'outcome="delivered"' in text and 'messages{status="delivered"} 1.0' in text:
                break
            await env.bridge.outbox.deliver_due()
    assert 'stemhub_jobs{status="COMPLETED"} 1.0' in text
    assert 'stemhub_job_duration_seconds_count{status="COMPLETED"} 1.0' in text
    assert 'stemhub_webhook_deliveries_total{event="job.completed",outcome="delivered"} 1.0' in text
    assert 'stemhub_webhook_outbox_messages{status="delivered"} 1.0' in text
    health = await env.client.get("/healthz")
    ready = await env.client.get("/readyz")
    assert health.json() == {"status": "ok"} and ready.json()["status"] == "ready"


async def test_docs_page_lists_every_operation(env: BridgeEnv) -> None:
    page = await env.client.get("/docs")
    doc = (await env.client.get("/openapi.json")).json()
    assert page.status_code == 200 and "<script" not in page.text
    for path in doc["paths"]:
        assert f"<code>{path}</code>" in page.text
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": env.url}]


async def test_the_bridge_restarts_and_delivers_what_was_queued(tmp_path: Path) -> None:
    from tests.bridge.conftest import run_receiver

    song = write_test_tone(tmp_path / "song.wav")
    async with run_receiver() as receiver:
        async with open_bridge(tmp_path / "hub") as first:
            first.bridge.outbox.retry = first.bridge.outbox.retry.with_(first_delay_s=3600)
            receiver.statuses = [503]
            answer = await first.client.post(
                "/v1/split",
                files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
                data={"wait": "10", "callback_url": receiver.url + "/hook/r"},
                headers=first.auth,
            )
            assert answer.status_code == 200
            await receiver.wait_for(1)
            (pending,) = await first.bridge.outbox.messages()
        async with open_bridge(tmp_path / "hub") as second:
            await second.bridge.outbox.deliver_due()
            assert await second.bridge.outbox.deliver_due() == 0
            second.bridge.outbox.clock = lambda: pending.created_at + 7200
            assert await second.bridge.outbox.deliver_due() == 1
        ids = [post.headers["webhook-id"] for post in receiver.posts]
    assert ids == [pending.id, pending.id]


async def test_metrics_can_require_a_token(tmp_path: Path) -> None:
    env_vars = {"STEMHUB_N8N_BRIDGE_METRICS_TOKEN": "scrape-me"}
    async with open_bridge(tmp_path / "hub", env=env_vars) as guarded:
        bare = await guarded.client.get("/metrics")
        wrong = await guarded.client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await guarded.client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert bare.status_code == 401 and wrong.status_code == 401
    assert bare.json()["error"]["code"] == "UNAUTHORIZED"
    assert right.status_code == 200 and "stemhub_jobs" in right.text


async def test_without_a_public_url_bridge_links_use_the_hubs_own_address(
    env: BridgeEnv, tmp_path: Path
) -> None:
    song = write_test_tone(tmp_path / "song.wav")
    answer = await env.client.post(
        "/v1/split",
        files={"file": ("song.wav", song.read_bytes(), "audio/wav")},
        data={"wait": "10", "stems": "vocals,drums"},
        headers=env.auth,
    )
    job = answer.json()
    url = job["stems"]["vocals"]["url"]
    assert url.startswith(f"http://127.0.0.1:{env.hub.settings.http_port}/files/")
    assert (await env.client.get(url)).status_code == 200, "the link works on loopback"
    stored = await env.hub.require_job(job["id"])
    assert env.hub.public_url is None, "the bridge never sets the hub's public URL"
    assert env.hub.links(stored) == {}, "so chat platforms get no loopback links"
    assert set(env.hub.links(stored, http_clients=True)) == {"vocals", "drums"}


def test_the_hubs_http_url_is_its_public_url_else_its_own_address(tmp_path: Path) -> None:
    public = make_settings(tmp_path, public_url="https://stems.example.test/")
    wildcard = make_settings(tmp_path, http_host="0.0.0.0", http_port=9000)
    ipv6 = make_settings(tmp_path, http_host="::1", http_port=9001)
    assert public.http_url == "https://stems.example.test"
    assert wildcard.http_url == "http://127.0.0.1:9000", "a wildcard bind is not a link host"
    assert ipv6.http_url == "http://[::1]:9001"


async def test_a_key_made_without_a_hub_works_in_the_hub(tmp_path: Path) -> None:
    async with open_plugin_state(make_settings(tmp_path / "hub")) as state:
        issued = await ApiKeys(state).create("made by a command")
    async with open_bridge(tmp_path / "hub") as opened:
        key = await opened.bridge.keys.authenticate(issued.token)
        secret = await opened.bridge.keys.webhook_secret(key.id)
    assert key.id == issued.key.id and key.name == "made by a command"
    assert secret == issued.webhook_secret, "sealed without the hub, opened by it"
