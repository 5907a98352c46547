"""Settings of the worker split."""

from __future__ import annotations

import pytest

from stemhub.config import Settings


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_broker_url_means_no_broker(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty ``STEMHUB_BROKER_URL=`` line would otherwise turn the worker split on,
    with Celery's default broker (a RabbitMQ on localhost)."""
    monkeypatch.setenv("STEMHUB_BROKER_URL", value)

    assert Settings(_env_file=None).broker_url is None


def test_a_broker_url_turns_the_split_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMHUB_BROKER_URL", "redis://127.0.0.1:6379/0")

    settings = Settings(_env_file=None)

    assert settings.broker_url is not None
    assert settings.broker_url.get_secret_value() == "redis://127.0.0.1:6379/0"
