"""In a real browser: log in, submit URLs and watch their cards live to the end."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from ingestion.models import Job, Status
from tests.browser.conftest import JOB_TIMEOUT_MS, log_in_as, shoot
from tests.conftest import LONG_PARAGRAPHS, article_html, slow_article

pytestmark = pytest.mark.django_db(transaction=True)


def card_of(page, url: str):
    """The card of the job for `url`, once the job exists."""
    deadline = time.monotonic() + 15
    while (job := Job.objects.filter(canonical_url=url).first()) is None:
        assert time.monotonic() < deadline, f"no job for {url}"
        time.sleep(0.1)
    return page.locator(f"#job-{job.pk}")


def submit(page, url: str) -> None:
    page.goto("/ingest/")
    page.get_by_label("URL", exact=True).fill(url)
    page.get_by_role("button", name="Submit").click()


def test_it_logs_in_with_the_form_and_out_again(page, alice):
    page.goto("/ingest/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/ingest/$"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Add URLs to the library")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto("/jobs/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/jobs/$"))


def test_a_submitted_url_reaches_100_percent_and_links_to_its_item(
    page, context, live, alice, page_server
):
    url = page_server.add("/bees", article_html("Bees and orchards", LONG_PARAGRAPHS))
    log_in_as(context, live, alice)
    page.goto("/ingest/")
    # Keyboard only: type the URL and press Enter.
    page.get_by_label("URL", exact=True).focus()
    page.keyboard.type(url)
    page.keyboard.press("Enter")
    card = card_of(page, url)
    expect(card).to_be_visible()
    expect(card.locator("progress")).to_have_attribute("value", "100", timeout=JOB_TIMEOUT_MS)
    expect(card.locator(".badge")).to_have_text("Completed")
    expect(card.locator(".stage--done")).to_have_count(3)
    assert page.evaluate("document.documentElement.dataset.liveTransport") == "sse"
    card.get_by_role("link", name="Read it in the library").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bees and orchards")
    expect(page.locator(".article-body")).to_contain_text("pollination improves the yield")


def test_a_reload_mid_job_picks_up_where_it_was(page, context, live, alice, page_server):
    url = page_server.add("/slow", handler=slow_article(seconds=8))
    log_in_as(context, live, alice)
    submit(page, url)
    card = card_of(page, url)
    expect(card.locator(".badge")).to_have_text("Processing", timeout=JOB_TIMEOUT_MS)
    page.reload()
    card = card_of(page, url)
    # The reloaded page renders the state so far, then keeps following the job.
    expect(card.locator(".badge")).to_have_text("Processing")
    expect(card.locator(".stage--current")).to_have_count(1)
    expect(card.locator(".badge")).to_have_text("Completed", timeout=JOB_TIMEOUT_MS)
    expect(card.locator("progress")).to_have_attribute("value", "100")
    expect(card.get_by_role("link", name="Read it in the library")).to_be_visible()


def test_a_failing_url_shows_its_stage_and_reason_and_can_be_retried(
    page, context, live, alice, page_server
):
    url = page_server.url("/missing-page")
    log_in_as(context, live, alice)
    submit(page, url)
    card = card_of(page, url)
    expect(card.locator(".badge")).to_have_text("Failed", timeout=JOB_TIMEOUT_MS)
    expect(card.locator(".job__error")).to_contain_text("extract")
    expect(card.locator(".reason")).to_have_text("http_status")
    expect(card.locator(".stage--failed")).to_have_count(1)
    page_server.add("/missing-page", article_html("Found at last", LONG_PARAGRAPHS))
    card.get_by_role("button", name="Retry").click()
    expect(card.locator(".badge")).to_have_text("Completed", timeout=JOB_TIMEOUT_MS)
    assert Job.objects.get(canonical_url=url).status == Status.COMPLETED


def test_pasted_urls_each_get_a_card_or_an_inline_error(page, context, live, alice, page_server):
    good = [
        page_server.add(f"/p{i}", article_html(f"Pasted {i}", LONG_PARAGRAPHS)) for i in range(3)
    ]
    log_in_as(context, live, alice)
    page.goto("/ingest/")
    page.get_by_label("Or paste many URLs, one a line").fill("\n".join([*good, "not a url"]))
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".url-error--invalid")).to_contain_text("not a url")
    expect(page.get_by_label("Or paste many URLs, one a line")).to_have_value("not a url")
    for url in good:
        badge = card_of(page, url).locator(".badge")
        expect(badge).to_have_text("Completed", timeout=JOB_TIMEOUT_MS)


def test_the_job_page_follows_one_job_with_htmx_sse(page, context, live, alice, page_server):
    url = page_server.add("/slow-one", handler=slow_article(seconds=5))
    log_in_as(context, live, alice)
    submit(page, url)
    card_of(page, url).get_by_role("link", name="Details").click()
    card = card_of(page, url)
    expect(card.locator(".badge")).to_have_text("Completed", timeout=JOB_TIMEOUT_MS)
    expect(card.locator("progress")).to_have_attribute("value", "100")


def test_it_falls_back_to_the_websocket_when_event_streams_fail(
    page, context, live, alice, page_server
):
    url = page_server.add("/socket", article_html("Over the socket", LONG_PARAGRAPHS))
    log_in_as(context, live, alice)
    # As a proxy that refuses event streams would: every SSE request gets a 503.
    page.route("**/api/v1/stream**", lambda route: route.fulfill(status=503, body="no streams"))
    submit(page, url)
    card = card_of(page, url)
    expect(card.locator(".badge")).to_have_text("Completed", timeout=JOB_TIMEOUT_MS)
    assert page.evaluate("document.documentElement.dataset.liveTransport") == "websocket"


def test_the_jobs_page_updates_live_and_cancels(page, context, live, alice, page_server):
    url = page_server.add("/slow-cancel", handler=slow_article(seconds=20))
    log_in_as(context, live, alice)
    page.goto("/jobs/")
    other = context.new_page()
    submit(other, url)
    # A job submitted in another tab appears here by itself.
    card = card_of(page, url)
    expect(card.locator(".badge")).to_have_text("Processing", timeout=JOB_TIMEOUT_MS)
    card.get_by_role("button", name="Cancel").click()
    expect(card.locator(".badge")).to_have_text("Cancelled")
    expect(card.get_by_role("button", name="Retry")).to_be_visible()
    assert Job.objects.get(canonical_url=url).status == Status.CANCELLED


def test_one_page_follows_finished_failed_and_running_jobs_together(
    page, context, live, alice, page_server
):
    done = page_server.add("/done", article_html("Bees and orchards", LONG_PARAGRAPHS))
    slow = page_server.add("/running", handler=slow_article(seconds=12))
    missing = page_server.url("/gone")
    log_in_as(context, live, alice)
    page.goto("/ingest/")
    page.get_by_label("Or paste many URLs, one a line").fill("\n".join([done, missing, slow]))
    page.get_by_role("button", name="Submit").click()
    expect(card_of(page, done).locator(".badge")).to_have_text("Completed", timeout=JOB_TIMEOUT_MS)
    expect(card_of(page, missing).locator(".badge")).to_have_text("Failed", timeout=JOB_TIMEOUT_MS)
    running = card_of(page, slow)
    expect(running.locator(".badge")).to_have_text("Processing", timeout=JOB_TIMEOUT_MS)
    shoot(page, "ingest-mid-job")
    expect(running.locator(".badge")).to_have_text("Completed", timeout=JOB_TIMEOUT_MS)
