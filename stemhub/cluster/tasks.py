"""The separation task on Celery: its configuration, its queues and its message.

Configuration and why (docs/adr/0002-task-engine.md has the whole argument):

- ``task_acks_late``: the worker acknowledges a message only when the task function has
  returned, and the task function returns only after the result is recorded in the job
  database. A worker that dies before that leaves the message unacknowledged, and the
  broker hands it to another worker (at-least-once).
- ``task_reject_on_worker_lost``: the same for a pool child that dies.
- ``worker_prefetch_multiplier = 1``: a worker holds no more messages than it runs, so a
  queued separation never waits behind a busy worker while another one is idle.
- ``worker_pool = threads``: the task runs in a thread while the worker's main loop keeps
  sending AMQP heartbeats, so a 10-minute separation never looks like a dead connection
  (with the ``solo`` pool the heartbeats stop during a task and RabbitMQ closes the
  connection and redelivers a task that is still running).
- RabbitMQ has no visibility timeout: an unacknowledged message stays with its consumer
  while the connection lives (bounded only by ``consumer_timeout``, 30 minutes by default,
  which deploy.md tells operators to raise for longer files). Redis emulates acks with a
  visibility timeout (``STEMHUB_BROKER_VISIBILITY_TIMEOUT_S``): a message unacknowledged
  that long goes back to the queue, whether its worker died or still runs it. Every
  worker sweeps for such messages every tenth of the timeout (10 s at most), and the
  worker's run lease (:mod:`stemhub.cluster.worker`) makes a second delivery of a task
  that still runs wait for that run instead of running it again.
- Only the job id, the backend's name, the task id and the input's object key travel:
  the worker reads the request from the job database and the audio from the object store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from celery import Celery

TASK_NAME = "stemhub.separate"
EXCHANGE = "stemhub"

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
REMOTE_QUEUE = "remote"
QUEUES = (CPU_QUEUE, GPU_QUEUE, REMOTE_QUEUE)

ROUTES: dict[str, str] = {
    "demucs": GPU_QUEUE,
    # the hosted API only waits: its tasks must never hold a GPU worker
    "stemsplit": REMOTE_QUEUE,
}
"""Backend name -> queue; any other backend runs on the CPU queue."""

DEFAULT_VISIBILITY_TIMEOUT_S = 3600.0
DEFAULT_HEARTBEAT_S = 30.0
MAX_RESTORE_INTERVAL_S = 10.0


def queue_for(backend: str) -> str:
    return ROUTES.get(backend, CPU_QUEUE)


class SeparateMessage(BaseModel):
    """The whole body of a separation task: ids and object keys, never audio or requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,80}$")
    job_id: str = Field(pattern=r"^[A-Za-z0-9]{1,64}$")
    backend: str = Field(pattern=r"^[a-z0-9_.-]{1,64}$")
    input_key: str | None = Field(default=None, max_length=512)


def make_app(
    broker_url: str,
    *,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
) -> Celery:
    """A Celery app for hubs (publishing) and workers (consuming) alike."""
    from celery import Celery
    from kombu import Exchange, Queue

    app = Celery("stemhub", broker=broker_url, set_as_current=False)
    exchange = Exchange(EXCHANGE, type="direct", durable=True)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_pool="threads",
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=CPU_QUEUE,
        task_default_exchange=EXCHANGE,
        task_default_routing_key=CPU_QUEUE,
        task_queues=[
            Queue(name, exchange, routing_key=name, durable=True, auto_delete=False)
            for name in QUEUES
        ],
        task_default_delivery_mode="persistent",
        task_publish_retry=True,
        broker_connection_retry_on_startup=True,
        broker_heartbeat=heartbeat_s,
        broker_transport_options={
            "confirm_publish": True,
            # Redis only (RabbitMQ ignores them): see the module doc
            "visibility_timeout": visibility_timeout_s,
            "unacked_restore_interval": max(
                1.0, min(MAX_RESTORE_INTERVAL_S, visibility_timeout_s / 10)
            ),
            "unacked_restore_throttle": 1,
        },
    )
    return app


def publish(app: Celery, message: SeparateMessage) -> None:
    """Send one separation task to its backend's queue; blocking (call it in a thread)."""
    queue = queue_for(message.backend)
    kwargs: dict[str, Any] = message.model_dump(exclude={"task_id"})
    app.send_task(
        TASK_NAME,
        kwargs=kwargs,
        task_id=message.task_id,
        queue=queue,
        routing_key=queue,
        exchange=EXCHANGE,
    )


__all__ = [
    "CPU_QUEUE",
    "DEFAULT_VISIBILITY_TIMEOUT_S",
    "GPU_QUEUE",
    "QUEUES",
    "REMOTE_QUEUE",
    "ROUTES",
    "TASK_NAME",
    "SeparateMessage",
    "make_app",
    "publish",
    "queue_for",
]
