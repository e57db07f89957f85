"""Security headers, CORS, CSRF, who may read what, and the settings each mode runs with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import drf_spectacular_sidecar
import pytest
from channels.testing import HttpCommunicator
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.asgi import get_asgi_application
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ingestion import services
from librarian.routing import build_application
from librarian.security import BASE_POLICY, CorsASGIMiddleware, content_security_policy
from tests.library.factories import make_item

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]
STRICT_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
APP = "https://app.example"


# ---------------------------------------------------------------- CSP against real pages


def parse_policy(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def allowed_sources(policy: dict[str, list[str]], directive: str) -> list[str]:
    return policy.get(directive, policy["default-src"])


def source_allowed(url: str, sources: list[str]) -> bool:
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        return "'self'" in sources
    if parts.scheme == "data":
        return "data:" in sources
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin in sources or f"{parts.scheme}:" in sources


class PageResources(HTMLParser):
    """What a page would load or run, as (directive, description, allowed-by) checks."""

    def __init__(self) -> None:
        super().__init__()
        self.needs: list[tuple[str, str]] = []  # (directive, source or 'inline')
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if any(k.startswith("on") for k in a):
            self.needs.append(("script-src", f"inline handler on <{tag}>"))
        if "style" in a:
            self.needs.append(("style-src", f"inline style attribute on <{tag}>"))
        if tag == "script":
            if a.get("src"):
                self.needs.append(("script-src", a["src"]))
            elif a.get("type", "text/javascript") in ("text/javascript", "module"):
                self._in_script = True
        elif tag == "style":
            self.needs.append(("style-src", "inline <style>"))
        elif tag == "link" and "stylesheet" in a.get("rel", "").split():
            self.needs.append(("style-src", a["href"]))
        elif tag == "img" and a.get("src"):
            self.needs.append(("img-src", a["src"]))
        elif tag == "form" and a.get("action"):
            self.needs.append(("form-action", a["action"]))

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.needs.append(("script-src", "inline <script>"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def csp_violations(html: str, policy_text: str) -> list[str]:
    policy = parse_policy(policy_text)
    page = PageResources()
    page.feed(html)
    violations = []
    for directive, source in page.needs:
        sources = allowed_sources(policy, directive)
        inline = source.startswith("inline")
        ok = "'unsafe-inline'" in sources if inline else source_allowed(source, sources)
        if not ok:
            violations.append(f"{directive}: {source}")
    return violations


@pytest.fixture
def root(db) -> Client:
    user = User.objects.create_superuser("root", password="root-password-123")
    client = Client()
    client.force_login(user)
    return client


def admin_pages() -> list[str]:
    pages = ["/admin/", "/admin/password_change/"]
    for model in admin.site._registry:
        meta = model._meta
        pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
    return pages


def test_it_sends_the_strict_policy_everywhere_but_the_api_docs(root):
    for path in ["/login/", "/", "/jobs/", "/ingest/", "/health", "/api/v1/library", "/admin/"]:
        response = root.get(path)
        assert response["Content-Security-Policy"] == STRICT_CSP, path
    assert content_security_policy("/api/docs/") != STRICT_CSP
    assert content_security_policy("/api/redoc/") != STRICT_CSP


def test_it_runs_the_admin_and_the_app_pages_under_the_strict_policy(root):
    item = make_item("Policy")
    job = services.job_submit(url="http://127.0.0.1:9/policy")
    pages = [*admin_pages(), "/", f"/items/{item.pk}/", "/ingest/", "/jobs/", f"/jobs/{job.pk}/"]
    pages.append(reverse("admin:library_libraryitem_change", args=[item.pk]))
    for path in pages:
        response = root.get(path)
        if response.status_code == 403 and path.endswith("/add/"):
            continue  # an admin that only shows rows (jobs are made by submitting)
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == STRICT_CSP, path
        assert csp_violations(response.content.decode(), STRICT_CSP) == [], path
    anonymous = Client().get("/admin/login/")
    assert csp_violations(anonymous.content.decode(), anonymous["Content-Security-Policy"]) == []


def test_it_relaxes_the_policy_only_as_far_as_swagger_needs():
    response = Client().get("/api/docs/")
    html = response.content.decode()
    policy = response["Content-Security-Policy"]
    # The strict policy would break the page; its own policy lets it all through.
    assert csp_violations(html, STRICT_CSP) == [
        "style-src: inline <style>",
        "script-src: inline <script>",
    ]
    assert csp_violations(html, policy) == []
    directives = parse_policy(policy)
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["connect-src"] == ["'self'"]


def test_it_relaxes_the_policy_only_as_far_as_redoc_needs():
    response = Client().get("/api/redoc/")
    html = response.content.decode()
    policy = parse_policy(response["Content-Security-Policy"])
    # Our Redoc page loads no fonts from outside (the app works offline): only its
    # inline <style> needs the relaxed policy.
    assert csp_violations(html, STRICT_CSP) == ["style-src: inline <style>"]
    assert csp_violations(html, response["Content-Security-Policy"]) == []
    # Redoc starts its search worker from a blob: URL and injects styled-components styles.
    redoc = Path(drf_spectacular_sidecar.__file__).parent / (
        "static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
    )
    source = redoc.read_text(errors="replace")
    assert "new Worker(URL.createObjectURL(new Blob(" in source
    assert 'createElement("style")' in source
    assert policy["worker-src"] == ["'self'", "blob:"]
    assert policy["script-src"] == ["'self'"]


def test_it_keeps_a_policy_a_view_set_itself(rf):
    from django.http import HttpResponse

    from librarian.security import SecurityHeadersMiddleware

    def view(request):
        response = HttpResponse("ok")
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    response = SecurityHeadersMiddleware(view)(rf.get("/"))
    assert response["Content-Security-Policy"] == "default-src 'none'"
    assert set(BASE_POLICY) <= set(parse_policy(content_security_policy("/")))


# ---------------------------------------------------------------- other headers, cookies


def test_it_forbids_sniffing_and_framing_on_pages_and_the_api(alice_client):
    for response in (Client().get("/login/"), alice_client.get("/api/v1/library")):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_it_sends_hsts_only_over_https():
    assert "Strict-Transport-Security" not in Client().get("/health")
    direct = Client().get("/health", secure=True)
    proxied = Client().get("/health", headers={"X-Forwarded-Proto": "https"})
    for response in (direct, proxied):
        assert response["Strict-Transport-Security"] == "max-age=31536000"


def test_it_sets_secure_http_only_cookies_on_login(alice):
    client = Client()
    client.get("/login/")
    response = client.post("/login/", {"username": "alice", "password": "alice-password-123"})
    assert response.status_code == 302
    login_cookie = response.cookies["sessionid"]
    assert login_cookie["secure"] and login_cookie["httponly"]
    assert login_cookie["samesite"] == "Lax"
    assert client.cookies["csrftoken"]["secure"]


def settings_under(tmp_path: Path, **env: str) -> dict:
    """The settings module as a fresh process with exactly `env` sees it."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LIBRARIAN_") and k not in ("SECRET_KEY", "DJANGO_SETTINGS_MODULE")
    }
    names = ["DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS"]
    code = (
        "import json, librarian.settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "LIBRARIAN_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout)


def test_it_runs_production_safe_unless_in_development_mode(tmp_path):
    production = settings_under(tmp_path, SECRET_KEY="s" * 50)
    assert production == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
    }
    development = settings_under(tmp_path, LIBRARIAN_DEBUG="1")
    assert development == {
        "DEBUG": True,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
    }
    assert settings_under(tmp_path, LIBRARIAN_TESTING="1")["DEBUG"] is False
    assert "SECRET_KEY must be set" in settings_under(tmp_path)["error"]


# ---------------------------------------------------------------- CORS


def preflight(client: Client, path: str, origin: str):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_it_answers_a_preflight_from_an_allowed_origin(settings):
    settings.LIBRARIAN_CORS_ORIGINS = [APP, "https://other.example"]
    response = preflight(Client(), "/api/v1/ingest", APP)
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == APP
    assert response["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert response["Access-Control-Allow-Headers"] == (
        "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
    )
    assert "Access-Control-Allow-Credentials" not in response
    assert "Origin" in response["Vary"]


def test_it_gives_an_unknown_origin_no_cors_headers(settings, alice_client, page_server):
    settings.LIBRARIAN_CORS_ORIGINS = [APP]
    refused = preflight(Client(), "/api/v1/ingest", "https://evil.example")
    assert refused.status_code != 204
    assert not [h for h in refused.headers if h.lower().startswith("access-control-")]
    posted = alice_client.post(
        "/api/v1/ingest",
        {"url": page_server.url("/cors")},
        format="json",
        headers={"Origin": "https://evil.example"},
    )
    assert posted.status_code == 202
    assert "Access-Control-Allow-Origin" not in posted


def test_it_marks_api_responses_for_an_allowed_origin(settings, alice_client, page_server):
    settings.LIBRARIAN_CORS_ORIGINS = [APP]
    posted = alice_client.post(
        "/api/v1/ingest", {"url": page_server.url("/c")}, format="json", headers={"Origin": APP}
    )
    assert posted.status_code == 202
    assert posted["Access-Control-Allow-Origin"] == APP
    assert posted["Access-Control-Expose-Headers"] == "Retry-After"
    assert "Access-Control-Allow-Credentials" not in posted
    # Pages are not part of the API: no CORS there, even for an allowed origin.
    assert "Access-Control-Allow-Origin" not in Client().get("/login/", headers={"Origin": APP})
    assert preflight(Client(), "/login/", APP).status_code != 204


def test_it_never_pairs_a_wildcard_with_credentials(settings):
    settings.LIBRARIAN_CORS_ORIGINS = ["*"]
    response = preflight(Client(), "/api/v1/library", "https://anyone.example")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response
    settings.LIBRARIAN_CORS_ORIGINS = []
    assert "Access-Control-Allow-Origin" not in preflight(Client(), "/api/v1/library", APP)


@pytest.mark.django_db(transaction=True)
def test_it_applies_the_same_rules_to_the_stream_consumers(settings, alice):
    from asgiref.sync import async_to_sync
    from rest_framework.authtoken.models import Token

    settings.LIBRARIAN_CORS_ORIGINS = [APP]
    app = CorsASGIMiddleware(build_application(get_asgi_application()))
    token = Token.objects.create(user=alice)
    job = services.job_submit(url="http://127.0.0.1:9/s", submitted_by=alice)
    services.job_cancel(job=job)
    path = f"/api/v1/stream/{job.pk}"
    auth = (b"authorization", f"Token {token.key}".encode())

    def call(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
        communicator = HttpCommunicator(app, method, path, headers=headers)
        return async_to_sync(communicator.get_response)(timeout=10)

    asked = call(
        "OPTIONS",
        path,
        [(b"origin", APP.encode()), (b"access-control-request-method", b"GET")],
    )
    headers = dict(asked["headers"])
    assert asked["status"] == 204
    assert headers[b"access-control-allow-origin"] == APP.encode()
    assert b"Last-Event-ID" in headers[b"access-control-allow-headers"]

    for origin, expected in ((APP, APP.encode()), ("https://evil.example", None)):
        answer = call("GET", path, [auth, (b"origin", origin.encode())])
        assert answer["status"] == 200
        assert b"job_cancelled" in answer["body"]
        assert dict(answer["headers"]).get(b"access-control-allow-origin") == expected

    # A Django API response already carries the header: it is not added twice.
    host = (b"host", b"testserver")
    answer = call("GET", "/api/v1/library", [auth, host, (b"origin", APP.encode())])
    names = [name.lower() for name, _ in answer["headers"]]
    assert answer["status"] == 200
    assert names.count(b"access-control-allow-origin") == 1


# ---------------------------------------------------------------- who may read and write what


def test_it_needs_a_login_for_the_library_unless_it_is_public(settings):
    item = make_item("Members only")
    anonymous = APIClient()
    assert anonymous.get(f"/api/v1/library/{item.pk}").status_code in (401, 403)
    page = Client().get("/")
    assert page.status_code == 302 and page["Location"].startswith("/login/")
    settings.LIBRARIAN_PUBLIC_LIBRARY = True
    assert anonymous.get(f"/api/v1/library/{item.pk}").json()["title"] == "Members only"
    assert Client().get("/").status_code == 200
    # A public library is still read-only for strangers: ingesting needs an account.
    posted = anonymous.post("/api/v1/ingest", {"url": "https://example.com/x"}, format="json")
    assert posted.status_code in (401, 403)


def test_it_enforces_csrf_on_session_authenticated_api_posts(alice, page_server):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice", password="alice-password-123")
    url = page_server.url("/csrf")
    refused = client.post("/api/v1/ingest", {"url": url}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    client.get("/ingest/")  # any page with a form hands out the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/ingest", {"url": url}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 202


def test_it_needs_no_csrf_token_with_an_api_token(alice_client, page_server):
    alice_client.handler.enforce_csrf_checks = True
    response = alice_client.post("/api/v1/ingest", {"url": page_server.url("/t")}, format="json")
    assert response.status_code == 202


def test_it_enforces_csrf_on_html_forms(alice):
    client = Client(enforce_csrf_checks=True)
    credentials = {"username": "alice", "password": "alice-password-123"}
    assert client.post("/login/", credentials).status_code == 403
    assert client.post("/admin/login/", credentials).status_code == 403
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    response = client.post("/login/", {**credentials, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
