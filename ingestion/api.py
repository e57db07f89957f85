"""The ingest API: submit, batch submit, status, cancel, retry."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from ingestion import services
from ingestion.access import job_for_user
from ingestion.serializers import (
    IngestRequestSerializer,
    job_accepted,
    job_status,
)

ERROR = OpenApiResponse(
    response=OpenApiTypes.OBJECT, description='{"error": message, "field": name}'
)
# A plain object: drf-spectacular cannot introspect JOB_STATUS (a
# BaseSerializer without fields) and /api/schema/ answered 500 with it.
JOB_STATUS = OpenApiResponse(
    response=OpenApiTypes.OBJECT, description="The job's status, as GET /api/v1/ingest/{id}"
)
MAX_BATCH = 100


class IngestThrottle(UserRateThrottle):
    scope = "ingest"


def submit_error_response(exc: services.SubmitError) -> Response:
    body: dict[str, Any] = {"error": exc.message, "field": exc.field}
    headers: dict[str, str] = {}
    if exc.job is not None:
        body["job_id"] = str(exc.job.pk)
        body["status"] = exc.job.status
        body["stream_url"] = job_accepted(exc.job)["stream_url"]
    if isinstance(exc, services.Backpressure):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(body, status=exc.status_code, headers=headers)


class IngestView(APIView):
    throttle_classes = [IngestThrottle]

    @extend_schema(
        request=IngestRequestSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", str, OpenApiParameter.HEADER, description="Repeat-safe key"
            )
        ],
        responses={
            202: OpenApiTypes.OBJECT,
            400: ERROR,
            409: ERROR,
            429: ERROR,
            503: ERROR,
        },
        summary="Submit a URL for ingestion",
    )
    def post(self, request: Request) -> Response:
        data = IngestRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            job = services.job_submit(
                url=data.validated_data["url"],
                priority=data.validated_data["priority"],
                options=dict(data.validated_data.get("options") or {}),
                submitted_by=request.user,
                idempotency_key=request.headers.get("Idempotency-Key", "")[:200],
            )
        except services.SubmitError as exc:
            return submit_error_response(exc)
        return Response(job_accepted(job), status=status.HTTP_202_ACCEPTED)


class IngestBatchView(APIView):
    throttle_classes = [IngestThrottle]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 400: ERROR},
        summary="Submit up to 100 URLs; each gets its own outcome",
    )
    def post(self, request: Request) -> Response:
        payload = request.data if isinstance(request.data, dict) else {}
        urls = payload.get("urls")
        if not isinstance(urls, list) or not urls:
            return Response({"error": "urls must be a non-empty list", "field": "urls"}, 400)
        if len(urls) > MAX_BATCH:
            return Response(
                {"error": f"at most {MAX_BATCH} urls per batch", "field": "urls"}, status=400
            )
        priority = payload.get("priority", "normal")
        options = payload.get("options") or {}
        results = []
        for index, url in enumerate(urls):
            entry: dict[str, Any] = {"index": index, "url": url}
            try:
                job = services.job_submit(
                    url=str(url), priority=priority, options=options, submitted_by=request.user
                )
            except services.DuplicateJob as exc:
                entry.update(outcome="duplicate", error=exc.message)
                if exc.job is not None:
                    entry["job_id"] = str(exc.job.pk)
            except services.SubmitError as exc:
                entry.update(outcome="invalid", error=exc.message, field=exc.field)
                if isinstance(exc, services.Backpressure):
                    entry["outcome"] = "rejected"
            else:
                from_library = bool(job.result and job.result.get("from_library"))
                entry.update(
                    outcome="in_library" if from_library else "accepted", **job_accepted(job)
                )
            results.append(entry)
        counts: dict[str, int] = {}
        for entry in results:
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        return Response({"results": results, "counts": counts})


class JobDetailView(APIView):
    @extend_schema(responses={200: JOB_STATUS, 404: ERROR}, summary="A job's status")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_status(job_for_user(request.user, job_id)))


class JobCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: JOB_STATUS, 404: ERROR, 409: ERROR},
        summary="Cancel a queued or processing job",
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = job_for_user(request.user, job_id)
        try:
            job = services.job_cancel(job=job)
        except services.TransitionError as exc:
            return Response({"error": str(exc), "field": "status"}, status=409)
        return Response(job_status(job))


class JobRetryView(APIView):
    @extend_schema(
        request=None,
        responses={202: JOB_STATUS, 404: ERROR, 409: ERROR},
        summary="Retry a failed or cancelled job",
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = job_for_user(request.user, job_id)
        try:
            job = services.job_retry(job=job)
        except services.TransitionError as exc:
            return Response({"error": str(exc), "field": "status"}, status=409)
        except services.DuplicateJob as exc:
            return submit_error_response(exc)
        return Response(job_status(job), status=202)
