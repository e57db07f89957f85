"""HTTP routes. Streams (SSE and WebSocket) are routed in librarian/asgi.py."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from ingestion import api as ingest_api
from librarian.health import health
from librarian.metrics import metrics_view
from library import api as library_api
from library import search_api

urlpatterns = [
    path("health", health, name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/ingest", ingest_api.IngestView.as_view(), name="ingest"),
    path("api/v1/ingest/batch", ingest_api.IngestBatchView.as_view(), name="ingest-batch"),
    path("api/v1/ingest/<str:job_id>", ingest_api.JobDetailView.as_view(), name="job-detail"),
    path(
        "api/v1/ingest/<str:job_id>/cancel", ingest_api.JobCancelView.as_view(), name="job-cancel"
    ),
    path("api/v1/ingest/<str:job_id>/retry", ingest_api.JobRetryView.as_view(), name="job-retry"),
    path("api/v1/library", library_api.LibraryListView.as_view(), name="library-list"),
    path("api/v1/library/search", search_api.SearchView.as_view(), name="library-search"),
    path(
        "api/v1/library/<int:item_id>/similar",
        search_api.SimilarItemsView.as_view(),
        name="library-similar",
    ),
    path(
        "api/v1/library/<int:item_id>", library_api.LibraryItemView.as_view(), name="library-item"
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="redoc",
    ),
    path("", include("librarian.web_urls")),
]
