"""Shared fixtures: personas, API clients, a real page server, an isolated data folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.pageserver import PageServer

PAGES = Path(__file__).parent / "pages"


@pytest.fixture(autouse=True)
def _isolated_data(settings, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own file storage and vector index, and may fetch 127.0.0.1."""
    settings.LIBRARIAN_FETCH_ALLOW_PRIVATE = True
    # Every test page is on 127.0.0.1: the per-host cap is tested on its own.
    settings.LIBRARIAN_FETCH_PER_HOST = 50
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "files"), "allow_overwrite": True},
        },
    }
    settings.QDRANT_PATH = tmp_path / "qdrant"
    _reset_index()
    yield
    _reset_index()


def _reset_index() -> None:
    from library import vector_index

    vector_index.reset_index_for_tests()


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer().start()
    yield server
    server.stop()


def article_html(title: str, paragraphs: list[str], *, author: str = "Ada Lovelace") -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{title}</title><meta name="author" content="{author}">
<meta property="og:site_name" content="Example Journal">
<meta property="article:published_time" content="2025-03-04T10:00:00Z"></head>
<body><nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>{title}</h1>{body}</article>
<footer>Copyright Example Journal. All rights reserved.</footer></body></html>"""


LONG_PARAGRAPHS = [
    "Gardeners who keep bees notice that pollination improves the yield of fruit trees, "
    "and the effect is strongest in orchards that plant several varieties side by side. "
    "Researchers measured apple harvests across forty farms over three seasons.",
    "The study found that hives placed within two hundred metres of the trees raised the "
    "number of fruit per branch by almost a third, while hives further away made little "
    "difference. Wild bees contributed as much as managed colonies on the smaller farms.",
    "Farmers reported that the cost of renting hives was repaid within a single season. "
    "Several cooperatives now share colonies between members, moving them by night when "
    "the bees are calm, and coordinating the timing with the bloom of each variety.",
    "Critics point out that managed honey bees compete with wild pollinators for nectar, "
    "and that a landscape with hedgerows and wildflower margins supports both. The "
    "authors agree and recommend planting flowering strips along the orchard edges.",
    "The next phase of the research will follow pear and cherry orchards, whose flowers "
    "open earlier in spring when fewer insects are active, to see whether the same "
    "distances apply when the weather is colder and the days are shorter.",
]


@pytest.fixture
def article_page(page_server: PageServer) -> str:
    return page_server.add("/orchard-bees", article_html("Bees and orchards", LONG_PARAGRAPHS))


def persona(name: str, *, is_staff: bool = False) -> User:
    # User ids repeat between tests, and throttle history is keyed by id in the
    # shared cache: a new persona starts with none.
    cache.clear()
    return User.objects.create_user(name, password=f"{name}-password-123", is_staff=is_staff)


@pytest.fixture
def alice(db) -> User:
    return persona("alice")


@pytest.fixture
def bob(db) -> User:
    return persona("bob")


@pytest.fixture
def staff(db) -> User:
    return persona("carol", is_staff=True)


@pytest.fixture
def alice_client(alice: User) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=alice)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def bob_client(bob: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(bob)
    return client


@pytest.fixture
def staff_client(staff: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


def subprocess_env(settings, **extra: str) -> dict[str, str]:
    """Environment for a server or worker process that shares this test's database."""
    import os

    db = settings.DATABASES["default"]
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LIBRARIAN_SQLITE_PATH")
    }
    if db["ENGINE"].endswith("sqlite3"):
        env["LIBRARIAN_SQLITE_PATH"] = str(db["NAME"])
    else:
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        user = db.get("USER") or "postgres"
        env["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{db['NAME']}"
    env.update(
        LIBRARIAN_TESTING="1",
        LIBRARIAN_FETCH_ALLOW_PRIVATE="1",
        LIBRARIAN_FETCH_PER_HOST="50",
        LIBRARIAN_DATA_DIR=str(settings.DATA_DIR),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def slow_article(seconds: float):
    """A handler that sends headers, then the body slowly over `seconds`."""

    def handler(request) -> None:
        body = article_html("Slow but sure", LONG_PARAGRAPHS).encode()
        request.send_response(200)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        steps = 20
        size = len(body) // steps + 1
        for i in range(steps):
            try:
                request.wfile.write(body[i * size : (i + 1) * size])
                request.wfile.flush()
            except OSError:
                return
            time.sleep(seconds / steps)

    return handler
