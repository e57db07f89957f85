"""The browser's pages: login, the library, ingesting and following jobs."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from ingestion import views as ingestion_views
from library import views as library_views

app_name = "web"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", library_views.library_index, name="library"),
    path("items/<int:item_id>/", library_views.item_detail, name="item"),
    path("items/<int:item_id>/tier", library_views.item_set_tier, name="item-tier"),
    path("items/<int:item_id>/tags", library_views.item_set_tags, name="item-tags"),
    path("ingest/", ingestion_views.ingest, name="ingest"),
    path("jobs/", ingestion_views.job_list, name="jobs"),
    path("jobs/<str:job_id>/", ingestion_views.job_detail, name="job"),
    path("jobs/<str:job_id>/card", ingestion_views.job_card, name="job-card"),
    path("jobs/<str:job_id>/cancel", ingestion_views.job_cancel, name="job-cancel"),
    path("jobs/<str:job_id>/retry", ingestion_views.job_retry, name="job-retry"),
]
