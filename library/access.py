"""Who may read and curate the library: one place for the rule."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from library.models import LibraryItem


def can_read_library(user: Any) -> bool:
    return bool(settings.LIBRARIAN_PUBLIC_LIBRARY or (user and user.is_authenticated))


def can_curate(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.is_staff)


class LibraryReadPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return can_read_library(request.user)


def item_for_user(user: Any, item_id: int | str) -> LibraryItem:
    if not can_read_library(user):
        raise Http404("no such item")
    try:
        key = int(item_id)
    except (TypeError, ValueError) as exc:
        raise Http404("no such item") from exc
    item = LibraryItem.objects.filter(pk=key).prefetch_related("tags").first()
    if item is None:
        raise Http404("no such item")
    return item
