"""The ingest API's shapes, exactly as API.md fixes them (plus added fields)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ingestion.models import Job


def iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


class IngestOptionsSerializer(serializers.Serializer):
    force_refresh = serializers.BooleanField(required=False, default=False)
    skip_screening = serializers.BooleanField(required=False, default=False)


class IngestRequestSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2048, trim_whitespace=True)
    priority = serializers.ChoiceField(choices=["high", "normal", "low"], default="normal")
    options = IngestOptionsSerializer(required=False)

    def validate_options(self, value: dict[str, Any]) -> dict[str, Any]:
        raw = self.initial_data.get("options") if isinstance(self.initial_data, dict) else None
        if isinstance(raw, dict):
            unknown = sorted(set(raw) - {"force_refresh", "skip_screening"})
            if unknown:
                raise serializers.ValidationError(f"unknown option(s): {', '.join(unknown)}")
            for name, given in raw.items():
                if not isinstance(given, bool):
                    raise serializers.ValidationError(f"{name} must be true or false")
        return value


def stream_url(job: Job) -> str:
    return f"/api/v1/stream/{job.pk}"


def job_accepted(job: Job) -> dict[str, Any]:
    return {
        "job_id": str(job.pk),
        "status": job.status,
        "url": job.url,
        "canonical_url": job.canonical_url,
        "priority": job.priority_label,
        "created_at": iso(job.created_at),
        "stream_url": stream_url(job),
    }


def job_status(job: Job) -> dict[str, Any]:
    error = None
    if job.error_type:
        error = {"type": job.error_type, "message": job.error_message, "stage": job.error_stage}
    return {
        "job_id": str(job.pk),
        "status": job.status,
        "url": job.url,
        "canonical_url": job.canonical_url,
        "priority": job.priority_label,
        "options": job.options,
        "attempts": job.attempts,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "progress": {
            "current_stage": job.current_stage or None,
            "stages_completed": list(job.stages_completed),
            "percent_complete": job.percent,
            "error": error,
        },
        "result": job.result,
        "stream_url": stream_url(job),
    }


class JobStatusSerializer(serializers.BaseSerializer):
    def to_representation(self, instance: Job) -> dict[str, Any]:
        return job_status(instance)
