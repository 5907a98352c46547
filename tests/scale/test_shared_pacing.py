"""The hosted API's rate limit holds for every process on one key together.

Two hubs on one store (a SQLite file, a PostgreSQL database), each with its own StemSplit
backend and so its own pacer, as two machines would have, send requests on one key to
the strict simulator (tests/fakes/stemsplit.py: 60 requests a minute per key, a 429 past
that). One of them restarts halfway, which gives it a fresh local bucket. With the
shared window in the store the simulator answers no 429 and sees at most 60 requests in
any sliding minute; without it (each pacer alone) the same load meets 429s.

API time runs 20 times faster than real time (the simulator and the backends share one
scaled clock), so a minute's window lasts 3 real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stemhub.backends.stemsplit.backend import StemSplitBackend, StemSplitTuning
from stemhub.backends.stemsplit.pacing import SHARED_SCOPE
from stemhub.errors import StemhubError
from stemhub.hub import Hub
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import make_settings
from tests.fakes.stemsplit import FakeStemSplit, run_fake_stemsplit

pytestmark = pytest.mark.timeout(600)

TIME_FACTOR = 0.05
REQUESTS_PER_HUB = 50
LIMIT = 60


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@contextlib.asynccontextmanager
async def hub_with_backend(
    data_dir: Path, database_url: str, fake: FakeStemSplit, *, shared: bool
) -> AsyncIterator[tuple[Hub, StemSplitBackend]]:
    settings = make_settings(data_dir, database_url=database_url)
    async with Hub(settings, pm=get_plugin_manager(only=())) as hub:
        backend = StemSplitBackend(
            settings,
            fake.settings(),
            tuning=StemSplitTuning(max_rate_limit_retries=2),
            clock=fake.clock,
            quota=hub if shared else None,
        )
        try:
            yield hub, backend
        finally:
            await backend.close()


async def requests_from(backend: StemSplitBackend, count: int) -> None:
    """``count`` API requests at once (``GET /balance``); some may fail for good (429s)."""
    calls = (backend.balance() for _ in range(count))
    for result in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(result, BaseException) and not isinstance(result, StemhubError):
            raise result


async def two_hubs_on_one_key(tmp_path: Path, database_url: str, *, shared: bool) -> FakeStemSplit:
    """Hub a sends its requests; hub b sends half, restarts, sends the other half.

    Hubs open one after the other (Alembic's context is global to a process); the
    requests of both run at once.
    """
    async with run_fake_stemsplit(
        time_factor=TIME_FACTOR, rate_limit=LIMIT, rate_window_s=60.0
    ) as fake:
        hub = functools.partial(
            hub_with_backend, database_url=database_url, fake=fake, shared=shared
        )
        async with hub(tmp_path / "a") as (_a, backend_a), hub(tmp_path / "b1") as (_b, backend_b):

            async def hub_b_restarting() -> None:
                await requests_from(backend_b, REQUESTS_PER_HUB // 2)
                await backend_b.close()
                async with hub(tmp_path / "b2") as (_b2, again):
                    await requests_from(again, REQUESTS_PER_HUB // 2)

            await asyncio.gather(requests_from(backend_a, REQUESTS_PER_HUB), hub_b_restarting())
        return fake


def rate_limited(fake: FakeStemSplit) -> int:
    return sum(1 for _at, _route, status in fake.state.api_requests() if status == 429)


async def test_two_hubs_on_one_key_stay_within_its_rate_limit_together(
    tmp_path: Path, database_url: str
) -> None:
    fake = await two_hubs_on_one_key(tmp_path, database_url, shared=True)

    assert rate_limited(fake) == 0
    assert fake.state.max_in_window() <= LIMIT
    assert fake.counters["balance"] == 2 * REQUESTS_PER_HUB


async def test_the_same_load_overruns_the_limit_when_each_hub_paces_alone(
    tmp_path: Path, database_url: str
) -> None:
    """The control: the load above is one that a pacer per process cannot keep in."""
    fake = await two_hubs_on_one_key(tmp_path, database_url, shared=False)

    assert rate_limited(fake) > 0


async def test_the_store_holds_a_hash_of_the_key_never_the_key(
    tmp_path: Path, database_url: str
) -> None:
    from sqlalchemy import select

    from stemhub._store import quota_hits

    async with (
        run_fake_stemsplit(time_factor=TIME_FACTOR) as fake,
        hub_with_backend(tmp_path / "a", database_url, fake, shared=True) as (hub, backend),
    ):
        await requests_from(backend, 3)
        async with hub.store.engine.connect() as conn:
            rows = (await conn.execute(select(quota_hits))).all()

    assert [row.scope for row in rows] == [SHARED_SCOPE] * 3
    subjects = {row.subject for row in rows}
    assert len(subjects) == 1
    (subject,) = subjects
    assert fake.api_key not in subject and fake.api_key[:8] not in subject
