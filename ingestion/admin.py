"""Jobs in the admin: read-only, with their events inline."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from ingestion.models import Job, JobEvent


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    fields = ("seq", "type", "stage", "percent", "message", "created_at")
    readonly_fields = fields
    ordering = ("seq",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "url",
        "status",
        "priority",
        "current_stage",
        "percent",
        "error_type",
        "attempts",
        "submitted_by",
        "created_at",
    )
    list_filter = ("status", "priority", "error_type", "error_stage")
    search_fields = ("url", "canonical_url", "id")
    date_hierarchy = "created_at"
    inlines = [JobEventInline]

    def view_on_site(self, obj: Job) -> str:  # type: ignore[override]
        # "View on site" opens the job's live page.
        return reverse("web:job", args=[obj.pk])

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
