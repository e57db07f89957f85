"""The library API: list with filters, and one item."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from library.access import LibraryReadPermission, item_for_user
from library.queries import items_filtered
from library.serializers import (
    ALLOWED_LIBRARY_PARAMS,
    LibraryQuerySerializer,
    item_detail,
    item_summary,
    query_data,
)

ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description='{"error", "field"}')


class LibraryListView(APIView):
    permission_classes = [LibraryReadPermission]

    @extend_schema(
        parameters=[
            LibraryQuerySerializer,
            OpenApiParameter("tag", str, many=True, description="repeatable; all must match"),
        ],
        responses={200: OpenApiTypes.OBJECT, 400: ERROR},
        summary="List library items",
    )
    def get(self, request: Request) -> Response:
        query = LibraryQuerySerializer(
            data=query_data(request.query_params, ALLOWED_LIBRARY_PARAMS)
        )
        query.is_valid(raise_exception=True)
        params = query.validated_data
        items = items_filtered(
            tier=params.get("tier"),
            tags=params.get("tag", []),
            sort=params["sort"],
            order=params["order"],
        )
        total = items.count()
        page = items[params["offset"] : params["offset"] + params["limit"]]
        return Response(
            {
                "total": total,
                "limit": params["limit"],
                "offset": params["offset"],
                "items": [item_summary(item) for item in page],
            }
        )


class LibraryItemView(APIView):
    permission_classes = [LibraryReadPermission]

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, 404: ERROR},
        summary="One library item",
        operation_id="v1_library_item_retrieve",
    )
    def get(self, request: Request, item_id: int) -> Response:
        return Response(item_detail(item_for_user(request.user, item_id)))
