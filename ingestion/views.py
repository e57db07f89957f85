"""The ingest and jobs pages, and the job card every live update re-renders whole.

A card is always rendered from the job row and its event log, never patched
from an event, so a replayed, late or duplicated event cannot leave it wrong:
the browser only learns "job X changed" and fetches the card again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Max, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh
from django_htmx.middleware import HtmxDetails

from ingestion import services
from ingestion.access import job_for_user, jobs_visible_to
from ingestion.events import STAGES
from ingestion.forms import IngestForm, JobFilterForm
from ingestion.models import ACTIVE_STATUSES, Job, JobEvent, Status


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


RECENT_ON_INGEST = 10
JOBS_PER_PAGE = 25
STAGE_LABELS = {"extract": "Extract", "transform": "Analyse", "load": "Store"}
STATE_LABELS = {
    "done": "done",
    "current": "in progress",
    "failed": "failed",
    "stopped": "stopped",
    "pending": "waiting",
}


@dataclass
class StageView:
    name: str
    label: str
    state: str = "pending"
    message: str = ""
    duration_ms: int | None = None

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def seconds(self) -> str:
        return f"{(self.duration_ms or 0) / 1000:.1f}"


@dataclass
class JobCard:
    job: Job
    stages: list[StageView]
    note: str = ""
    duration_ms: int | None = None
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.job.status in ACTIVE_STATUSES

    @property
    def can_cancel(self) -> bool:
        return self.live

    @property
    def can_retry(self) -> bool:
        return self.job.status in (Status.FAILED, Status.CANCELLED)

    @property
    def title(self) -> str:
        return str(self.result.get("title") or self.job.url)

    @property
    def from_library(self) -> bool:
        return bool(self.result.get("from_library"))


def _events_by_job(jobs: Iterable[Job]) -> dict[Any, list[JobEvent]]:
    """Each job's events of its current attempt (after its last `job_started`)."""
    rows = JobEvent.objects.filter(job__in=list(jobs)).only(
        "job_id", "seq", "type", "stage", "message", "data"
    )
    by_job: dict[Any, list[JobEvent]] = defaultdict(list)
    for event in rows.order_by("job_id", "seq"):
        if event.type == "job_started":
            by_job[event.job_id] = []
        by_job[event.job_id].append(event)
    return by_job


def card_for(job: Job, events: list[JobEvent], error: str = "") -> JobCard:
    if job.status == Status.QUEUED and job.attempts == 0:
        events = []  # a fresh or retried job: the old attempt's story no longer applies
    stages: dict[str, StageView] = {name: StageView(name, STAGE_LABELS[name]) for name in STAGES}
    card = JobCard(job=job, stages=list(stages.values()), error=error, result=job.result or {})
    for event in events:
        stage = stages.get(event.stage)
        if event.type == "job_completed":
            card.duration_ms = event.data.get("duration_ms")
        if stage is None:
            continue
        if event.message:
            stage.message = event.message
            card.note = event.message
        if event.type == "stage_completed":
            stage.duration_ms = event.data.get("duration_ms")
    for stage in card.stages:
        if stage.name in job.stages_completed:
            stage.state = "done"
        elif job.status == Status.FAILED and stage.name == job.error_stage:
            stage.state = "failed"
        elif stage.name == job.current_stage and job.status == Status.PROCESSING:
            stage.state = "current"
        elif stage.name == job.current_stage and job.status == Status.CANCELLED:
            stage.state = "stopped"
    return card


def cards_for(jobs: Iterable[Job]) -> list[JobCard]:
    jobs = list(jobs)
    events = _events_by_job(jobs)
    return [card_for(job, events.get(job.pk, [])) for job in jobs]


def stream_start(user: Any) -> int:
    """The newest event of the user's jobs: the per-user stream resumes after it."""
    newest = JobEvent.objects.filter(job__submitted_by_id=user.pk).aggregate(top=Max("pk"))
    return int(newest["top"] or 0)


def _page_context(request: HttpRequest, nav: str) -> dict[str, Any]:
    return {"nav": nav, "stream_after": stream_start(request.user)}


def _submit_all(form: IngestForm, user: Any) -> list[dict[str, Any]]:
    """Submit each URL on its own; each gets an outcome, so one bad line spoils none."""
    outcomes: list[dict[str, Any]] = []
    for url in form.url_list():
        outcome: dict[str, Any] = {"url": url, "error": "", "job": None}
        try:
            job = services.job_submit(
                url=url,
                priority=form.cleaned_data["priority"],
                options=form.options(),
                submitted_by=user,
            )
        except services.DuplicateJob as exc:
            outcome.update(kind="duplicate", error=f"Already being processed: {exc.message}")
        except services.Backpressure as exc:
            outcome.update(kind="rejected", error=f"Not accepted now: {exc.message}")
        except services.SubmitError as exc:
            outcome.update(kind="invalid", error=f"Not a URL we can fetch: {exc.message}")
        else:
            from_library = bool(job.result and job.result.get("from_library"))
            outcome.update(kind="in_library" if from_library else "accepted", job=job)
        outcomes.append(outcome)
    return outcomes


@login_required
@require_http_methods(["GET", "POST"])
def ingest(request: HttpRequest) -> HttpResponse:
    failed: list[dict[str, Any]] = []
    if request.method == "POST":
        form = IngestForm(request.POST)
        if form.is_valid():
            outcomes = _submit_all(form, request.user)
            failed = [o for o in outcomes if o["error"]]
            accepted = [o for o in outcomes if not o["error"]]
            _report_accepted(request, accepted)
            if not failed:
                # Post/redirect/get: a reload must not submit the URLs again.
                return redirect("web:ingest")
            # Keep only the lines that failed, so they can be fixed and sent again.
            form = IngestForm(
                initial={
                    "urls": "\n".join(o["url"] for o in failed),
                    "priority": form.cleaned_data["priority"],
                    **form.options(),
                }
            )
    else:
        form = IngestForm()
    jobs = Job.objects.filter(submitted_by_id=request.user.pk).order_by("-created_at")
    context = {
        **_page_context(request, "ingest"),
        "form": form,
        "failed": failed,
        "cards": cards_for(jobs[:RECENT_ON_INGEST]),
    }
    return render(request, "ingestion/ingest.html", context)


def _report_accepted(request: HttpRequest, accepted: list[dict[str, Any]]) -> None:
    queued = sum(1 for o in accepted if o["kind"] == "accepted")
    known = len(accepted) - queued
    if queued:
        messages.success(request, f"Queued {queued} URL{'s' if queued != 1 else ''}.")
    if known:
        messages.info(
            request,
            f"{known} URL{'s were' if known != 1 else ' was'} already in the library.",
        )


def _filtered_jobs(request: HttpRequest, status: str) -> QuerySet[Job]:
    jobs = jobs_visible_to(request.user).select_related("submitted_by")
    if status == "active":
        jobs = jobs.filter(status__in=ACTIVE_STATUSES)
    elif status:
        jobs = jobs.filter(status=status)
    return jobs.order_by("-created_at")


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    form = JobFilterForm(request.GET)
    status = form.cleaned_data["status"] if form.is_valid() else ""
    page = Paginator(_filtered_jobs(request, status), JOBS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        **_page_context(request, "jobs"),
        "form": form,
        "page": page,
        "cards": cards_for(page.object_list),
        "query": query.urlencode(),
    }
    return render(request, "ingestion/jobs.html", context)


@login_required
@require_GET
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = job_for_user(request.user, job_id)
    context = {"nav": "jobs", "card": cards_for([job])[0], "single": True}
    return render(request, "ingestion/job.html", context)


@login_required
@require_GET
def job_card(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    """The card's inner HTML, fetched by the page after every event of the job."""
    job = job_for_user(request.user, job_id)
    return _card_response(request, cards_for([job])[0])


def _card_response(request: HtmxHttpRequest, card: JobCard) -> HttpResponse:
    single = _came_from(request) == reverse("web:job", args=[card.job.pk])
    context = {"card": card, "single": single, "back": _came_from(request)}
    return render(request, "ingestion/_job_card.html", context)


def _came_from(request: HtmxHttpRequest) -> str:
    """The page a request was made from (htmx names it; forms carry `next`)."""
    candidates = [request.POST.get("next", ""), request.htmx.current_url_abs_path or ""]
    for candidate in candidates:
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return str(candidate)
    return ""


@login_required
@require_POST
def job_cancel(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    job = job_for_user(request.user, job_id)
    try:
        job = services.job_cancel(job=job)
    except services.TransitionError as exc:
        return _after_action(request, job, error=f"Could not cancel: {exc}")
    return _after_action(request, job, done="Job cancelled.")


@login_required
@require_POST
def job_retry(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    job = job_for_user(request.user, job_id)
    try:
        job = services.job_retry(job=job)
    except services.TransitionError as exc:
        return _after_action(request, job, error=f"Could not retry: {exc}")
    except services.DuplicateJob as exc:
        return _after_action(request, job, error=f"Could not retry: {exc.message}")
    if request.htmx and _came_from(request) == reverse("web:job", args=[job.pk]):
        # That page's stream ended with the failure: reload it to follow the new attempt.
        return HttpResponseClientRefresh()
    return _after_action(request, job, done="Job queued again.")


def _after_action(
    request: HtmxHttpRequest, job: Job, *, done: str = "", error: str = ""
) -> HttpResponse:
    if request.htmx:
        job.refresh_from_db()
        return _card_response(request, card_for(job, _events_by_job([job]).get(job.pk, []), error))
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return HttpResponseRedirect(_came_from(request) or reverse("web:job", args=[job.pk]))
