"""Fixtures for the live-stream tests: a real Daphne process on the test database.

The server runs as a subprocess with the same database (the test database
pytest-django created) and the same `REDIS_URL` as the tests, so an event the
test writes with `emit_event` reaches it exactly as a worker's would: pushed
through Redis when `REDIS_URL` is set, read from the table otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from rest_framework.authtoken.models import Token

from ingestion.events import emit_event
from ingestion.models import Job

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@dataclass
class StreamServer:
    base: str
    process: subprocess.Popen[bytes]

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://", 1)


@pytest.fixture(scope="package")
def stream_server(
    django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StreamServer]:
    """Daphne on a free port, serving the real ASGI application on the test database."""
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("stream-server")
    env = {
        **os.environ,
        "LIBRARIAN_TESTING": "1",
        "DATABASE_URL": _database_url(),
        "LIBRARIAN_DATA_DIR": str(data_dir),
        "LIBRARIAN_SSE_HEARTBEAT_S": "0.5",
        "LIBRARIAN_SSE_POLL_S": "0.1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    daphne = Path(sys.executable).parent / "daphne"
    log = (data_dir / "daphne.log").open("wb")
    process = subprocess.Popen(
        [str(daphne), "-b", "127.0.0.1", "-p", str(port), "librarian.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited: {(data_dir / 'daphne.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/api/v1/stream", timeout=2).status_code == 401:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("daphne did not answer within 60 s")
        time.sleep(0.2)
    yield StreamServer(base=base, process=process)
    # Stop it before the test database is dropped (PostgreSQL refuses while connected).
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture
def alice_token(alice: User) -> str:
    return Token.objects.create(user=alice).key


@pytest.fixture
def bob_token(bob: User) -> str:
    return Token.objects.create(user=bob).key


def token_header(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


def make_job(user: User, path: str = "article") -> Job:
    url = f"https://example.com/{path}-{uuid.uuid4().hex[:8]}"
    return Job.objects.create(url=url, canonical_url=url, submitted_by=user)


# A whole successful run, in the contract's order.
RUN: list[tuple[str, dict[str, Any]]] = [
    ("job_started", {}),
    ("stage_started", {"stage": "extract", "message": "Fetching content from URL"}),
    ("stage_progress", {"stage": "extract", "percent": 25, "message": "Downloaded 1.2 MB"}),
    ("stage_completed", {"stage": "extract", "duration_ms": 3200}),
    ("stage_started", {"stage": "transform", "message": "Processing content with AI"}),
    ("stage_completed", {"stage": "transform", "duration_ms": 5400}),
    ("stage_started", {"stage": "load", "message": "Storing in library"}),
    ("stage_completed", {"stage": "load", "duration_ms": 1200}),
    (
        "job_completed",
        {"duration_ms": 12000, "result": {"file_path": "library/tier-b/x.md", "title": "X"}},
    ),
]


def emit(job_id: uuid.UUID, event_type: Any, **fields: Any) -> int:
    """Write one event as a worker would; returns its seq. Safe from any thread."""
    try:
        return emit_event(job_id, event_type, **fields).seq
    finally:
        if threading.current_thread() is not threading.main_thread():
            # A connection left open in a helper thread keeps PostgreSQL from
            # dropping the test database at the end of the run.
            connections.close_all()


def emit_run(job_id: uuid.UUID, run: list[tuple[str, dict[str, Any]]] = RUN) -> list[int]:
    return [emit(job_id, event_type, **fields) for event_type, fields in run]


# ---------------------------------------------------------------- an SSE client


@dataclass
class Frame:
    event: str
    data: dict[str, Any]
    id: str | None

    @property
    def seq(self) -> int:
        assert self.id is not None, f"{self.event} frame has no id"
        return int(self.id)


def parse_frames(lines: Iterator[str]) -> Iterator[Frame]:
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "event" in fields or "data" in fields:
                yield Frame(
                    event=fields.get("event", "message"),
                    data=json.loads(fields.get("data", "null")),
                    id=fields.get("id"),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


class StreamReader:
    """Reads one SSE response in a thread, keeping every frame, until it ends or is stopped."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0):
        self.url = url
        self.headers = headers or {}
        self.timeout = timeout
        self.frames: list[Frame] = []
        self.status: int | None = None
        self.response_headers: httpx.Headers | None = None
        self.body: bytes = b""
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.ended_by_server = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            # The read timeout outlives several heartbeats, so a stall fails loudly.
            timeout = httpx.Timeout(self.timeout, read=5.0)
            with httpx.stream("GET", self.url, headers=self.headers, timeout=timeout) as response:
                self.status = response.status_code
                self.response_headers = response.headers
                self.opened.set()
                if response.status_code != 200:
                    self.body = response.read()
                    return
                for frame in parse_frames(response.iter_lines()):
                    self.frames.append(frame)
                    if self._stop.is_set():
                        return
                self.ended_by_server = True
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()

    def wait_open(self, timeout: float = 10.0) -> StreamReader:
        assert self.opened.wait(timeout), "no response"
        return self

    def wait_end(self, timeout: float = 20.0) -> StreamReader:
        assert self.ended.wait(timeout), f"stream did not end; got {self.events()}"
        if self.error is not None:
            raise AssertionError(f"stream failed: {self.error!r}")
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Frame]:
        deadline = time.monotonic() + timeout
        while len(self.events()) < count and time.monotonic() < deadline:
            if self.ended.is_set():
                break
            time.sleep(0.01)
        return self.events()

    def stop(self) -> None:
        """Stop reading at the next frame (a heartbeat at the latest) and hang up."""
        self._stop.set()
        self.ended.wait(10)

    def events(self) -> list[Frame]:
        return [f for f in self.frames if f.event != "heartbeat"]

    def heartbeats(self) -> list[Frame]:
        return [f for f in self.frames if f.event == "heartbeat"]

    def json(self) -> Any:
        return json.loads(self.body)
