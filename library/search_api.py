"""The search API: find items by words or meaning, and items similar to one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from library import search
from library.access import LibraryReadPermission, item_for_user
from library.models import Tier
from library.serializers import item_summary, query_data

ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description='{"error", "field"}')
HITS = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description=(
        '{"query", "mode", "total", "items": [item summary + "score", "passage", "highlights"]}. '
        "score: cosine similarity (semantic), text rank (keyword) or reciprocal-rank-fusion "
        "score (hybrid); comparable within one answer only."
    ),
)


class IndexUnavailable(APIException):
    status_code = 503
    default_detail = "the vector index is not available in this process; try again shortly"


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=500, help_text="what to look for")
    mode = serializers.ChoiceField(choices=list(search.MODES), default="hybrid")
    tier = serializers.ChoiceField(choices=Tier.values, required=False)
    tag = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)


class SimilarQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)


ALLOWED_SEARCH_PARAMS = {"q", "mode", "tier", "tag", "limit", "format"}
ALLOWED_SIMILAR_PARAMS = {"limit", "format"}


def _hit(hit: search.SearchHit) -> dict[str, Any]:
    return {**item_summary(hit.item), **search.describe(hit)}


class SearchView(APIView):
    permission_classes = [LibraryReadPermission]

    @extend_schema(
        parameters=[
            SearchQuerySerializer,
            OpenApiParameter("tag", str, many=True, description="repeatable; all must match"),
        ],
        responses={200: HITS, 400: ERROR, 503: ERROR},
        summary="Search the library by keywords, meaning, or both",
    )
    def get(self, request: Request) -> Response:
        query = SearchQuerySerializer(data=query_data(request.query_params, ALLOWED_SEARCH_PARAMS))
        query.is_valid(raise_exception=True)
        params = query.validated_data
        try:
            hits = search.search(
                q=params["q"],
                mode=params["mode"],
                tier=params.get("tier"),
                tags=params.get("tag", []),
                limit=params["limit"],
            )
        except search.IndexUnavailable as exc:
            raise IndexUnavailable() from exc
        return Response(
            {
                "query": params["q"],
                "mode": params["mode"],
                "total": len(hits),
                "items": [_hit(hit) for hit in hits],
            }
        )


class SimilarItemsView(APIView):
    permission_classes = [LibraryReadPermission]

    @extend_schema(
        parameters=[SimilarQuerySerializer],
        responses={200: HITS, 400: ERROR, 404: ERROR, 503: ERROR},
        summary="Items about the same things as one item",
    )
    def get(self, request: Request, item_id: int) -> Response:
        item = item_for_user(request.user, item_id)
        query = SimilarQuerySerializer(
            data=query_data(request.query_params, ALLOWED_SIMILAR_PARAMS)
        )
        query.is_valid(raise_exception=True)
        try:
            hits = search.similar_items(item, limit=query.validated_data["limit"])
        except search.IndexUnavailable as exc:
            raise IndexUnavailable() from exc
        return Response({"item_id": item.pk, "total": len(hits), "items": [_hit(h) for h in hits]})
