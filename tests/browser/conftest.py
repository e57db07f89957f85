"""A live Librarian for the browser: Daphne and a django-q2 worker on the test database,
driven by Debian's Chromium through Playwright.

The servers run once for all browser tests as subprocesses sharing pytest's test database
(and `REDIS_URL`, when set) and one data folder, so a job submitted in the
browser is fetched by the real worker from the real page server and streamed back
by the real consumers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.conftest import subprocess_env

# Playwright's sync API keeps an event loop running in the test's thread, which
# Django would take for async code and refuse the test's database calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Long enough for a cold worker to load its embedding model on the first job.
JOB_TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Live:
    base: str
    data_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def files(self) -> Path:
        return self.data_dir / "files"

    def logs(self) -> str:
        out = []
        for name in ("daphne.log", "qcluster.log"):
            path = self.data_dir / name
            if path.exists():
                out.append(f"== {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        process_group=0,  # its own group, so the worker's children stop with it
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="package")
def live(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("live")
    port = _free_port()
    env = subprocess_env(
        django_settings,
        LIBRARIAN_DATA_DIR=str(data_dir),
        LIBRARIAN_DEBUG="1",
        LIBRARIAN_SECURE_COOKIES="0",
        LIBRARIAN_WORKERS="2",
        LIBRARIAN_SSE_HEARTBEAT_S="1",
        LIBRARIAN_SSE_POLL_S="0.1",
        # Every test page is on 127.0.0.1, and the per-host fetch slots live in the
        # shared cache (Redis): other runs on this machine must not make us wait.
        LIBRARIAN_FETCH_PER_HOST="50",
    )
    daphne = str(Path(sys.executable).parent / "daphne")
    server = Live(base=f"http://127.0.0.1:{port}", data_dir=data_dir)
    server.processes.append(
        _start(
            [daphne, "-b", "127.0.0.1", "-p", str(port), "librarian.asgi:application"],
            env,
            data_dir / "daphne.log",
        )
    )
    server.processes.append(
        _start([sys.executable, "manage.py", "qcluster"], env, data_dir / "qcluster.log")
    )
    try:
        _wait_until_up(server)
        yield server
    finally:
        # Stop before the test database is dropped (PostgreSQL refuses while connected).
        for process in server.processes:
            _stop(process)


def _wait_until_up(server: Live) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in server.processes):
            raise RuntimeError(f"a server process exited:\n{server.logs()}")
        try:
            if httpx.get(f"{server.base}/login/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the live server did not answer within 60 s:\n{server.logs()}")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Console:
    errors: list[str] = field(default_factory=list)

    def policy_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def context(
    request: pytest.FixtureRequest, browser: Any, live: Live, console: Console
) -> Iterator[Any]:
    ctx = browser.new_context(base_url=live.base, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    ctx.on("weberror", lambda error: console.errors.append(f"page error: {error.error}"))
    yield ctx
    if request.node.stash.get(FAILED, False):
        # What the servers said is the first thing to read when a browser test fails.
        print(live.logs(), "\n== browser console\n", "\n".join(console.errors))
    ctx.close()
    # No inline script, handler or style may be needed: the pages' CSP forbids them.
    assert console.policy_violations() == []
    assert [e for e in console.errors if e.startswith("page error")] == []


@pytest.fixture
def page(context: Any, console: Console) -> Any:
    tab = context.new_page()
    tab.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    return tab


def log_in_as(context: Any, live: Live, user: Any) -> None:
    """Log the browser in as `user` by handing it the login cookie (the form has its own test)."""
    client = Client()
    client.force_login(user)
    context.add_cookies(
        [
            {"name": cookie.key, "value": cookie.value, "url": live.base, "httpOnly": True}
            for cookie in client.cookies.values()
        ]
    )


def shoot(page: Any, name: str) -> None:
    """Save a screenshot for the README when LIBRARIAN_SCREENSHOTS=1."""
    if os.environ.get("LIBRARIAN_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
