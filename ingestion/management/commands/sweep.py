"""manage.py sweep: re-queue jobs of dead workers and nudge idle queued jobs now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ingestion import services


class Command(BaseCommand):
    help = "Re-queue jobs whose lease expired and re-enqueue queued jobs no task carries."

    def handle(self, *args: Any, **opts: Any) -> None:
        counts = services.sweep()
        self.stdout.write(" ".join(f"{k}={v}" for k, v in counts.items()))
