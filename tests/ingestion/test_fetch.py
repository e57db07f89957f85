from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from ipaddress import IPv4Address

import httpx
import pytest

from ingestion.fetch import FetchError, fetch, pinned_request
from ingestion.netcheck import IPAddress
from tests.pageserver import PageServer

MiB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[PageServer]:
    pages = PageServer().start()
    yield pages
    pages.stop()


@pytest.fixture
def released() -> Iterator[threading.Event]:
    """Set at teardown, so handlers that hang on purpose let their threads end."""
    event = threading.Event()
    yield event
    event.set()


def _only_loopback_v4(ip: IPAddress) -> bool:
    return ip == IPv4Address("127.0.0.1")


def _head(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()


def _fetch_error(url: str, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_it_fetches_a_page(server: PageServer) -> None:
    url = server.add("/ok", "<html><head><title>Hi</title></head><body>Héllo</body></html>")

    page = fetch(url, allow_private=True)

    assert page.url == url
    assert page.status == 200
    assert page.content_type == "text/html"
    assert page.encoding == "utf-8"
    assert "Héllo" in page.text
    assert page.nbytes == len(
        "<html><head><title>Hi</title></head><body>Héllo</body></html>".encode()
    )
    assert page.redirects == []
    assert page.elapsed_ms >= 0


def test_it_sends_the_configured_user_agent(server: PageServer, settings) -> None:
    seen: list[str] = []

    def who(handler: BaseHTTPRequestHandler) -> None:
        seen.append(handler.headers["User-Agent"])
        _head(handler, 200, {"Content-Type": "text/plain", "Content-Length": "2"})
        handler.wfile.write(b"ok")

    settings.LIBRARIAN_FETCH_USER_AGENT = "LibrarianTest/1.0"
    fetch(server.add("/ua", handler=who), allow_private=True)

    assert seen == ["LibrarianTest/1.0"]


def test_it_decodes_with_the_header_charset_over_the_meta_one(server: PageServer) -> None:
    text = "<html><head><meta charset='utf-8'></head><body>Café – “quoted” €5</body></html>"
    url = server.add(
        "/cp1252",
        text.encode("windows-1252"),
        headers={"Content-Type": "text/html; charset=windows-1252"},
    )

    page = fetch(url, allow_private=True)

    assert page.encoding == "cp1252"
    assert "Café – “quoted” €5" in page.text


def test_it_reads_latin_1_labels_as_windows_1252(server: PageServer) -> None:
    url = server.add(
        "/latin1",
        "<p>“smart” quotes</p>".encode("cp1252"),
        headers={"Content-Type": "text/html; charset=ISO-8859-1"},
    )

    assert "“smart” quotes" in fetch(url, allow_private=True).text


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="shift_jis">',
        '<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">',
    ],
)
def test_it_decodes_with_the_meta_charset(server: PageServer, meta: str) -> None:
    text = f"<html><head>{meta}<title>日本語</title></head><body>こんにちは、世界。</body></html>"
    url = server.add("/sjis", text.encode("shift_jis"), headers={"Content-Type": "text/html"})

    page = fetch(url, allow_private=True)

    assert page.encoding == "cp932"
    assert "こんにちは、世界。" in page.text


def test_it_detects_an_undeclared_charset(server: PageServer) -> None:
    sentence = "Съешь же ещё этих мягких французских булок, да выпей чаю. "
    body = f"<html><body><p>{sentence * 20}</p></body></html>".encode("windows-1251")
    url = server.add("/detect", body, headers={"Content-Type": "text/html"})

    page = fetch(url, allow_private=True)

    assert sentence in page.text


def test_it_sniffs_a_page_without_a_content_type(server: PageServer) -> None:
    def untyped(handler: BaseHTTPRequestHandler) -> None:
        body = b"<!DOCTYPE html><html><body>No type</body></html>"
        _head(handler, 200, {"Content-Length": str(len(body))})
        handler.wfile.write(body)

    page = fetch(server.add("/untyped", handler=untyped), allow_private=True)

    assert page.content_type == "text/html"
    assert "No type" in page.text


def test_it_refuses_an_untyped_pdf(server: PageServer) -> None:
    def untyped_pdf(handler: BaseHTTPRequestHandler) -> None:
        body = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"
        _head(handler, 200, {"Content-Length": str(len(body))})
        handler.wfile.write(body)

    error = _fetch_error(server.add("/pdf", handler=untyped_pdf), allow_private=True)

    assert error.reason == "not_html"
    assert not error.transient


def test_it_refuses_a_declared_pdf_before_reading_it(server: PageServer) -> None:
    sent: list[int] = []

    def pdf(handler: BaseHTTPRequestHandler) -> None:
        _head(handler, 200, {"Content-Type": "application/pdf", "Connection": "close"})
        sent.append(_write_until_refused(handler, 50 * MiB))

    error = _fetch_error(server.add("/doc.pdf", handler=pdf), allow_private=True)

    assert error.reason == "not_html"
    assert not error.transient


def test_it_follows_a_redirect_chain(server: PageServer) -> None:
    final = server.add("/final", "<html><body>Arrived</body></html>")
    second = server.add("/second", status=302, headers={"Location": final})
    first = server.add("/first", status=301, headers={"Location": "/second"})

    page = fetch(first, allow_private=True)

    assert page.url == final
    assert page.redirects == [first, second]
    assert "Arrived" in page.text


def test_it_stops_at_the_redirect_cap(server: PageServer) -> None:
    loop = server.add("/loop", status=307, headers={"Location": "/loop"})

    error = _fetch_error(loop, allow_private=True, max_redirects=3)

    assert error.reason == "too_many_redirects"
    assert not error.transient
    assert server.hits("/loop") == 4


def test_it_blocks_a_private_address(server: PageServer) -> None:
    url = server.add("/secret", "<html>secret</html>")

    error = _fetch_error(url, allow_private=False)

    assert error.reason == "blocked_address"
    assert not error.transient
    assert server.hits("/secret") == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/admin",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://167772161/",
        "http://0xa.1/",
        "http://[::ffff:10.0.0.1]/",
    ],
)
def test_it_checks_every_redirect_hop(server: PageServer, target: str) -> None:
    hop = server.add("/hop", status=302, headers={"Location": target})

    # The policy trusts the test server's address only; the hop goes elsewhere.
    error = _fetch_error(hop, address_policy=_only_loopback_v4)

    assert error.reason == "blocked_address"
    assert server.hits("/hop") == 1


@pytest.mark.parametrize(
    "location", ["ftp://example.com/file", "http://u:p@example.com/", "http://012.0.0.1/"]
)
def test_it_refuses_a_redirect_to_a_url_it_will_not_fetch(
    server: PageServer, location: str
) -> None:
    hop = server.add("/bad", status=302, headers={"Location": location})

    error = _fetch_error(hop, allow_private=True)

    assert error.reason == "invalid_url"
    assert not error.transient


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "http://user:pw@example.com/", "javascript:alert(1)"]
)
def test_it_refuses_urls_it_will_not_fetch(url: str) -> None:
    assert _fetch_error(url, allow_private=True).reason == "invalid_url"


def _write_until_refused(handler: BaseHTTPRequestHandler, total: int) -> int:
    """Write `total` bytes of HTML-ish filler; return how many were sent before the client left."""
    chunk = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"
    sent = 0
    try:
        while sent < total:
            handler.wfile.write(chunk)
            sent += len(chunk)
    except OSError:
        pass
    return sent


def test_it_aborts_a_stream_past_the_byte_cap(server: PageServer) -> None:
    sent: list[int] = []
    done = threading.Event()

    def huge(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        _head(handler, 200, {"Content-Type": "text/html", "Connection": "close"})
        sent.append(_write_until_refused(handler, 50 * MiB))
        done.set()

    error = _fetch_error(server.add("/huge", handler=huge), allow_private=True, max_bytes=MiB)

    assert error.reason == "too_large"
    assert not error.transient
    assert done.wait(10)
    assert sent[0] < 50 * MiB


def test_it_refuses_a_declared_length_over_the_cap(server: PageServer) -> None:
    sent: list[int] = []

    def declared(handler: BaseHTTPRequestHandler) -> None:
        _head(handler, 200, {"Content-Type": "text/html", "Content-Length": str(50 * MiB)})
        sent.append(_write_until_refused(handler, 50 * MiB))

    error = _fetch_error(server.add("/big", handler=declared), allow_private=True, max_bytes=MiB)

    assert error.reason == "too_large"


def test_it_stops_a_gzip_bomb(server: PageServer) -> None:
    bomb = gzip.compress(b" " * (50 * MiB), compresslevel=9)
    assert len(bomb) < MiB // 4
    url = server.add(
        "/bomb", bomb, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}
    )

    error = _fetch_error(url, allow_private=True, max_bytes=MiB)

    assert error.reason == "too_large"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, no zlib header
    ],
)
def test_it_inflates_compressed_pages(server: PageServer, encoding: str, compress) -> None:
    html = "<html><body>" + "Compressed café. " * 5000 + "</body></html>"
    url = server.add(
        "/z",
        compress(html.encode()),
        headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": encoding},
    )

    page = fetch(url, allow_private=True)

    assert page.text == html
    assert page.nbytes == len(html.encode())


def test_it_reports_progress_as_bytes_arrive(server: PageServer) -> None:
    body = b"<html><body>" + b"a" * (300 * 1024) + b"</body></html>"
    url = server.add("/progress", body)
    calls: list[tuple[int, int | None]] = []

    fetch(url, allow_private=True, on_progress=lambda got, total: calls.append((got, total)))

    assert calls[-1] == (len(body), len(body))
    assert 2 <= len(calls) <= len(body) // (64 * 1024) + 1
    received = [got for got, _ in calls]
    assert received == sorted(received)
    assert all(b - a >= 64 * 1024 for a, b in zip(received, received[1:-1], strict=False))


def test_it_marks_429_as_transient_with_retry_after(server: PageServer) -> None:
    url = server.add("/busy", "slow down", status=429, headers={"Retry-After": "120"})

    error = _fetch_error(url, allow_private=True)

    assert error.reason == "http_status"
    assert error.status == 429
    assert error.transient
    assert error.retry_after == 120


def test_it_reads_retry_after_as_an_http_date(server: PageServer) -> None:
    when = formatdate(time.time() + 90, usegmt=True)
    url = server.add("/later", "down", status=503, headers={"Retry-After": when})

    error = _fetch_error(url, allow_private=True)

    assert error.transient
    assert error.retry_after is not None
    assert 80 <= error.retry_after <= 91


def test_it_marks_404_as_permanent(server: PageServer) -> None:
    error = _fetch_error(server.url("/missing"), allow_private=True)

    assert error.reason == "http_status"
    assert error.status == 404
    assert not error.transient
    assert error.retry_after is None


def test_it_marks_503_as_transient(server: PageServer) -> None:
    error = _fetch_error(server.add("/down", "down", status=503), allow_private=True)

    assert (error.reason, error.status, error.transient) == ("http_status", 503, True)


def test_it_times_out_on_a_server_that_never_answers(
    server: PageServer, released: threading.Event, settings
) -> None:
    settings.LIBRARIAN_FETCH_READ_TIMEOUT_S = 0.5

    def hang(handler: BaseHTTPRequestHandler) -> None:
        released.wait(30)

    url = server.add("/hang", handler=hang)

    started = time.monotonic()
    error = _fetch_error(url, allow_private=True)

    assert error.reason == "fetch_timeout"
    assert error.transient
    assert time.monotonic() - started < 3


def test_it_gives_up_on_a_slow_drip_at_the_total_timeout(
    server: PageServer, released: threading.Event
) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        _head(handler, 200, {"Content-Type": "text/html", "Connection": "close"})
        try:
            while not released.wait(0.05):
                handler.wfile.write(b"<")
                handler.wfile.flush()
        except OSError:
            pass

    started = time.monotonic()
    error = _fetch_error(
        server.add("/drip", handler=drip), allow_private=True, read_timeout=5, total_timeout=1
    )

    assert error.reason == "fetch_timeout"
    assert error.transient
    assert time.monotonic() - started < 3


def test_it_fails_to_connect_to_a_closed_port() -> None:
    closed = PageServer()
    port = closed.port
    closed.httpd.server_close()

    error = _fetch_error(f"http://127.0.0.1:{port}/", allow_private=True)

    assert error.reason == "connection_failed"
    assert error.transient


def test_it_connects_to_the_checked_address_and_names_the_host(server: PageServer) -> None:
    seen: list[tuple[str, str]] = []

    def who(handler: BaseHTTPRequestHandler) -> None:
        seen.append((handler.headers["Host"], handler.connection.getsockname()[0]))
        _head(handler, 200, {"Content-Type": "text/plain", "Content-Length": "2"})
        handler.wfile.write(b"ok")

    server.add("/who", handler=who)
    checked: list[IPAddress] = []

    def policy(ip: IPAddress) -> bool:
        checked.append(ip)
        return True

    page = fetch(f"http://localhost:{server.port}/who", address_policy=policy)

    assert page.url == f"http://localhost:{server.port}/who"
    assert seen == [(f"localhost:{server.port}", "127.0.0.1")]
    assert IPv4Address("127.0.0.1") in checked


def test_it_builds_requests_for_the_checked_ip_with_the_real_host() -> None:
    url = httpx.URL("https://example.com:8443/a?b=1")
    request = pinned_request(
        url, IPv4Address("93.184.215.14"), timeout=httpx.Timeout(1.0), user_agent="test"
    )

    assert request.url == httpx.URL("https://93.184.215.14:8443/a?b=1")
    assert request.headers["Host"] == "example.com:8443"
    assert request.extensions["sni_hostname"] == "example.com"
