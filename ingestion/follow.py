"""Follow jobs from a script: read each job's event log in seq order until it ends.

The command line runs beside the database, so it reads the same durable log the
SSE stream replays (resuming by seq), rather than going through HTTP.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ingestion.events import FINAL_EVENTS
from ingestion.models import Job, JobEvent

OnEvent = Callable[[uuid.UUID, str, dict[str, Any], int], None]
FINAL_STATUS = {"job_completed": "completed", "error": "failed", "job_cancelled": "cancelled"}


def follow_jobs(
    job_ids: Iterable[uuid.UUID],
    *,
    on_event: OnEvent,
    deadline: float,
    poll_s: float = 0.2,
) -> dict[uuid.UUID, str]:
    """Call `on_event` for each event of each job; return each job's final status."""
    last_seq = {job_id: 0 for job_id in job_ids}
    percent = dict.fromkeys(last_seq, 0)
    final: dict[uuid.UUID, str] = {}
    while len(final) < len(last_seq) and time.monotonic() < deadline:
        pending = [j for j in last_seq if j not in final]
        for job_id in pending:
            events = JobEvent.objects.filter(job_id=job_id, seq__gt=last_seq[job_id]).order_by(
                "seq"
            )
            for event in events:
                last_seq[job_id] = event.seq
                data = event.data or {}
                percent[job_id] = int(data.get("job_percent_complete", percent[job_id]))
                if event.type == "job_completed":
                    percent[job_id] = 100
                on_event(job_id, event.type, data, percent[job_id])
                if event.type in FINAL_EVENTS:
                    # A retried job may continue after an error; trust the row.
                    status = Job.objects.values_list("status", flat=True).get(pk=job_id)
                    if status in ("completed", "failed", "cancelled"):
                        final[job_id] = status
        if len(final) < len(last_seq):
            time.sleep(poll_s)
    return final
