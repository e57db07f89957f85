"""manage.py ingest, sweep, ensure_admin and serve, run as a user would run them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection

from ingestion import tasks
from ingestion.models import Job, Status
from tests.conftest import subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def work_in_background(count: int) -> threading.Thread:
    def run() -> None:
        done = 0
        deadline = time.monotonic() + 60
        while done < count and time.monotonic() < deadline:
            if tasks.run_next_job() is None:
                time.sleep(0.1)
            else:
                done += 1
        connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_it_submits_and_waits_with_progress(alice, article_page, page_server):
    User.objects.create_superuser("root", password="root-password-1")
    worker = work_in_background(1)
    out, err = StringIO(), StringIO()
    call_command("ingest", article_page, "--wait", "--timeout", "60", stdout=out, stderr=err)
    worker.join()
    job = Job.objects.get()
    assert job.status == Status.COMPLETED
    assert job.submitted_by is not None and job.submitted_by.username == "root"
    assert "completed: library/tier-" in out.getvalue()


def test_it_exits_non_zero_when_a_job_fails(alice, page_server):
    url = page_server.add("/missing", "nope", status=404)
    worker = work_in_background(1)
    err = StringIO()
    with pytest.raises(CommandError, match="2 of 2"):
        call_command(
            "ingest", url, "not a url", "--wait", "--user", "alice", "--timeout", "60", stderr=err
        )
    worker.join()
    assert "http_status" in err.getvalue()
    assert "not a url" in err.getvalue()


def test_it_refuses_an_unknown_user(article_page):
    with pytest.raises(CommandError, match="no user"):
        call_command("ingest", article_page, "--user", "nobody")


def test_it_sweeps_from_the_command_line():
    out = StringIO()
    call_command("sweep", stdout=out)
    assert out.getvalue().strip() == "requeued=0 failed=0 nudged=0"


def test_it_creates_the_admin_once(monkeypatch):
    monkeypatch.setenv("LIBRARIAN_ADMIN_USER", "boss")
    monkeypatch.delenv("LIBRARIAN_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert "with password:" in out.getvalue()
    assert User.objects.get(username="boss").is_superuser
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert "exists" in again.getvalue()
    monkeypatch.setenv("LIBRARIAN_ADMIN_PASSWORD", "chosen-password-9")
    call_command("ensure_admin", stdout=StringIO())
    assert User.objects.get(username="boss").check_password("chosen-password-9")


def test_it_serves_web_and_workers_and_stops_both_on_sigterm(settings, tmp_path, monkeypatch):
    for name, value in subprocess_env(settings, LIBRARIAN_DATA_DIR=str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen: dict[str, object] = {}

    def watch() -> None:
        # Runs beside the command: wait for the web server, note the children, stop it.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "status" not in seen:
            try:
                seen["status"] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(0.3)
        seen["children"] = subprocess.run(
            ["pgrep", "-P", str(os.getpid())], capture_output=True, text=True
        ).stdout.split()
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out = StringIO()
    call_command("serve", "--port", str(port), stdout=out)
    watcher.join(timeout=5)
    assert seen["status"] == 200
    children = [int(pid) for pid in seen["children"]]  # type: ignore[attr-defined]
    assert len(children) >= 2
    for pid in children:
        assert not Path(f"/proc/{pid}").exists()
    assert f"serving on http://127.0.0.1:{port}/" in out.getvalue()
