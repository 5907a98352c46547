"""What hubs and workers tell each other, kept in the job database (its key-value table,
through the hub's ``kv`` interface).

A worker records a task's outcome with an insert-if-absent before it acknowledges the
message, so the outcome survives the worker, the hub and the broker, and a task that
runs twice (at-least-once) has exactly one recorded outcome: the first. Progress and
cancel requests live beside it, and the run lease: the worker running a task renews it
while it runs, so a second delivery of the task (Redis's visibility timeout, a worker
that lost its broker connection) waits for that run instead of running the task again.
Everything is keyed by the task id, so a retried job's new task never reads an old
task's outcome.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from stemhub.errors import ErrorCode, StemhubError

if TYPE_CHECKING:
    from stemhub.plugin.api import KeyValue

NAMESPACE = "cluster"
RESULT_TTL_S = 14 * 24 * 3600.0
FLAG_TTL_S = 2 * 24 * 3600.0


class StoredStem(BaseModel):
    key: str | None = None
    url: str | None = None
    size_bytes: int | None = None
    duration_s: float | None = None


class StoredError(BaseModel):
    code: ErrorCode
    message: str
    retryable: bool = False
    operator_message: str | None = None

    @classmethod
    def of(cls, error: StemhubError) -> StoredError:
        return cls(
            code=error.code,
            message=error.message,
            retryable=error.retryable,
            operator_message=error.operator_message,
        )

    def raise_it(self) -> None:
        raise StemhubError(
            self.code,
            self.message,
            retryable=self.retryable,
            operator_message=self.operator_message,
        )


class Outcome(BaseModel):
    """A task's one recorded outcome: stems, an error, or a cancellation."""

    worker: str
    stems: dict[str, StoredStem] = Field(default_factory=dict)
    bpm: float | None = None
    key: str | None = None
    error: StoredError | None = None
    cancelled: bool = False


class Progress(BaseModel):
    percent: float
    message: str | None = None
    worker: str
    at: float = Field(default_factory=time.time)


class Records:
    """The records of the namespace ``cluster`` (``Records(hub.kv(NAMESPACE))``)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def record_outcome(self, task_id: str, outcome: Outcome) -> bool:
        """True when this call recorded it; False when an earlier run already had."""
        value = outcome.model_dump(mode="json")
        return await self.kv.add(f"outcome:{task_id}", value, ttl_s=RESULT_TTL_S)

    async def outcome(self, task_id: str) -> Outcome | None:
        value = await self.kv.get(f"outcome:{task_id}")
        return None if value is None else Outcome.model_validate(value)

    async def put_progress(self, task_id: str, progress: Progress) -> None:
        value = progress.model_dump(mode="json")
        await self.kv.put(f"progress:{task_id}", value, ttl_s=FLAG_TTL_S)

    async def progress(self, task_id: str) -> Progress | None:
        value = await self.kv.get(f"progress:{task_id}")
        return None if value is None else Progress.model_validate(value)

    async def request_cancel(self, task_id: str) -> None:
        await self.kv.add(f"cancel:{task_id}", True, ttl_s=FLAG_TTL_S)

    async def cancel_requested(self, task_id: str) -> bool:
        return await self.kv.get(f"cancel:{task_id}") is not None

    async def note_delivery(self, task_id: str, worker: str) -> None:
        """Append this worker to the task's deliveries (every receipt, dropped ones too)."""
        await self._append(f"deliveries:{task_id}", worker)

    async def deliveries(self, task_id: str) -> list[str]:
        return await self._list(f"deliveries:{task_id}")

    async def _append(self, key: str, item: str) -> None:
        value: Any = [*await self._list(key), item]
        await self.kv.put(key, value, ttl_s=FLAG_TTL_S)

    async def _list(self, key: str) -> list[str]:
        value = await self.kv.get(key)
        return [str(item) for item in value] if isinstance(value, list) else []

    async def claim_run(self, task_id: str, worker: str, ttl_s: float) -> bool:
        """Take the task's run lease: True unless another worker holds it, alive."""
        return await self.kv.add(f"running:{task_id}", worker, ttl_s=ttl_s)

    async def renew_run(self, task_id: str, worker: str, ttl_s: float) -> None:
        await self.kv.put(f"running:{task_id}", worker, ttl_s=ttl_s)

    async def running_on(self, task_id: str) -> str | None:
        """The worker whose run lease on the task is alive, if any."""
        value = await self.kv.get(f"running:{task_id}")
        return None if value is None else str(value)

    async def release_run(self, task_id: str) -> None:
        await self.kv.delete(f"running:{task_id}")

    async def note_start(self, task_id: str, worker: str) -> None:
        """Append this worker to the task's runs (operators read it; tests count it)."""
        await self._append(f"runs:{task_id}", worker)

    async def runs(self, task_id: str) -> list[str]:
        return await self._list(f"runs:{task_id}")


__all__ = ["NAMESPACE", "Outcome", "Progress", "Records", "StoredError", "StoredStem"]
