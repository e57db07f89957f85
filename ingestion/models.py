"""Jobs (the queue of record) and their durable event log."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Status(models.TextChoices):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (Status.QUEUED, Status.PROCESSING)
TERMINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class Priority(models.IntegerChoices):
    # Lower sorts first: the claim orders by (priority, created_at).
    HIGH = 0, "high"
    NORMAL = 1, "normal"
    LOW = 2, "low"

    @classmethod
    def from_label(cls, label: str) -> Priority:
        return {"high": cls.HIGH, "normal": cls.NORMAL, "low": cls.LOW}[label]


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2048)
    canonical_url = models.URLField(max_length=2048, db_index=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    current_stage = models.CharField(max_length=12, blank=True)
    stages_completed = models.JSONField(default=list, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    error_type = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    error_stage = models.CharField(max_length=12, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(
        null=True, blank=True, help_text="Backoff: not claimable before."
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    idempotency_key = models.CharField(max_length=200, blank=True)
    item = models.ForeignKey(
        "library.LibraryItem", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "priority", "created_at"], name="job_claim_order"),
            models.Index(fields=["status", "lease_expires_at"], name="job_lease"),
            models.Index(fields=["submitted_by", "-created_at"], name="job_by_user"),
        ]
        constraints = [
            # Dedup that cannot race: one active job per canonical URL, enforced
            # by the database, so two simultaneous submissions get one 202, one 409.
            models.UniqueConstraint(
                fields=["canonical_url"],
                condition=Q(status__in=["queued", "processing"]),
                name="job_one_active_per_url",
            ),
            models.UniqueConstraint(
                fields=["submitted_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="job_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.status} {self.url}"

    @property
    def priority_label(self) -> str:
        return Priority(self.priority).label

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobEvent(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=20)
    stage = models.CharField(max_length=12, blank=True)
    message = models.TextField(blank=True)
    percent = models.PositiveSmallIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="jobevent_unique_seq")]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.seq} {self.type}"
