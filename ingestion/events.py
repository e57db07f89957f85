"""The progress-event contract: types, payloads, the durable log and publishing.

An event is written to `JobEvent` first (its `seq` is the SSE `id:`) and
published to the channel layer after the transaction commits, so a consumer that
subscribes and then reads the log never misses one.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ingestion.models import Job, JobEvent

log = logging.getLogger(__name__)

EventType = Literal[
    "job_started",
    "stage_started",
    "stage_progress",
    "stage_completed",
    "job_completed",
    "error",
    "heartbeat",
    "job_cancelled",
]
Stage = Literal["extract", "transform", "load"]
STAGES: tuple[Stage, ...] = ("extract", "transform", "load")
# After one of these the stream of a job ends.
FINAL_EVENTS = frozenset({"job_completed", "error", "job_cancelled"})


class WireEvent(TypedDict):
    id: int
    event: str
    data: dict[str, Any]


def iso_now() -> str:
    return timezone.now().isoformat().replace("+00:00", "Z")


def job_group(job_id: uuid.UUID | str) -> str:
    return f"job.{job_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}.jobs"


def live_push_enabled() -> bool:
    """Events cross processes through Redis; without it consumers poll the table."""
    return bool(settings.REDIS_URL)


def emit_event(
    job_id: uuid.UUID,
    event_type: EventType,
    *,
    stage: str = "",
    message: str = "",
    percent: int | None = None,
    **fields: Any,
) -> JobEvent:
    """Append one event to the job's log and publish it once the write commits."""
    data: dict[str, Any] = {"job_id": str(job_id)}
    if stage:
        data["stage"] = stage
    if message:
        data["message"] = message
    if percent is not None:
        data["percent"] = percent
    data.update(fields)
    data["timestamp"] = iso_now()
    with transaction.atomic():
        # The counter row is locked by the update, so seqs are gap-free per job.
        Job.objects.filter(pk=job_id).update(last_seq=F("last_seq") + 1)
        job_row = Job.objects.values("last_seq", "submitted_by_id").get(pk=job_id)
        event = JobEvent.objects.create(
            job_id=job_id,
            seq=job_row["last_seq"],
            type=event_type,
            stage=stage,
            message=message,
            percent=percent,
            data=data,
        )
        owner = job_row["submitted_by_id"]
        transaction.on_commit(lambda: publish_event(event, owner))
    return event


def to_wire(event: JobEvent) -> WireEvent:
    return {"id": event.seq, "event": event.type, "data": event.data}


def publish_event(event: JobEvent, owner_id: int | None) -> None:
    if not live_push_enabled():
        return
    layer = get_channel_layer()
    if layer is None:
        return
    # `pk` lets a per-user stream resume by row id without reading the table.
    message = {"type": "job.event", "pk": event.pk, **to_wire(event)}
    try:
        async_to_sync(layer.group_send)(job_group(event.job_id), message)
        if owner_id is not None:
            async_to_sync(layer.group_send)(user_group(owner_id), message)
    except Exception:  # noqa: BLE001
        # The event is durable in the table; a stream re-reads it on reconnect.
        log.warning("publish failed", extra={"job_id": event.job_id}, exc_info=True)


def format_sse(wire: WireEvent) -> bytes:
    return (
        f"id: {wire['id']}\nevent: {wire['event']}\ndata: {json.dumps(wire['data'])}\n\n"
    ).encode()


def format_heartbeat(job_id: str | None = None) -> bytes:
    data: dict[str, Any] = {"timestamp": iso_now()}
    if job_id:
        data["job_id"] = job_id
    return f"event: heartbeat\ndata: {json.dumps(data)}\n\n".encode()
