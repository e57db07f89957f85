"""One JSON error shape for the whole API: {"error": message, "field": name, ...}."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from librarian import db_unavailable


def _first_message(detail: Any) -> tuple[str, str]:
    """(field, message) of the first problem in a DRF error detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field, message = _first_message(value)
            name = key if key != "non_field_errors" else ""
            return (f"{name}.{field}" if field and name else name or field), message
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return "", str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, db_unavailable.UNAVAILABLE):
        return database_unavailable(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_message(exc.detail)
        response.data = {"error": message, "field": field, "detail": exc.detail}
    elif isinstance(exc, exceptions.Throttled):
        response.data = {
            "error": str(exc.detail),
            "field": "",
            "retry_after": getattr(exc, "wait", None),
        }
    elif isinstance(exc, exceptions.APIException):
        response.data = {"error": str(exc.detail), "field": ""}
    return response


def database_unavailable(exc: Exception) -> Response:
    return Response(
        {"error": db_unavailable.unavailable_message(exc), "field": ""},
        status=503,
        headers={"Retry-After": str(db_unavailable.RETRY_AFTER_S)},
    )
