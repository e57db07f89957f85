"""manage.py ensure_admin: make sure an admin user exists (used by make run)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the admin user from LIBRARIAN_ADMIN_USER / LIBRARIAN_ADMIN_PASSWORD, "
        "or with a generated password printed once, unless a superuser exists."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        users = get_user_model()
        username = os.environ.get("LIBRARIAN_ADMIN_USER", "admin")
        password = os.environ.get("LIBRARIAN_ADMIN_PASSWORD", "")
        existing = users.objects.filter(username=username).first()
        if existing is not None:
            if password:
                existing.set_password(password)
                existing.is_staff = existing.is_superuser = True
                existing.save()
            self.stdout.write(f"admin user {username!r} exists")
            return
        if users.objects.filter(is_superuser=True).exists() and not password:
            self.stdout.write("a superuser exists")
            return
        generated = not password
        password = password or secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=password)
        if generated:
            self.stdout.write(f"created admin user {username!r} with password: {password}")
            self.stdout.write("(shown once; set LIBRARIAN_ADMIN_PASSWORD to choose one)")
        else:
            self.stdout.write(f"created admin user {username!r}")
