"""Fetch one web page safely and return its text.

Fetching is an attack surface: every hop is resolved and checked (netcheck), the
connection goes to the very address that was checked (so DNS rebinding cannot
swap it), redirects are followed here one by one, and bytes, time and content
types are capped. Failures are FetchError with a typed reason the pipeline
records and a `transient` flag that says whether a retry may help.
"""

from __future__ import annotations

import codecs
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, TypeVar

import charset_normalizer
import httpx
from django.conf import settings

from ingestion.netcheck import AddressPolicy, BlockedAddress, IPAddress, resolve_checked

Reason = Literal[
    "blocked_address",
    "invalid_url",
    "fetch_timeout",
    "connection_failed",
    "http_status",
    "not_html",
    "too_large",
    "too_many_redirects",
]
ProgressCallback = Callable[[int, int | None], None]
_T = TypeVar("_T")

ACCEPTED_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PROGRESS_EVERY = 64 * 1024
_INFLATE_STEP = 64 * 1024
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1"

# WHATWG decodes these labels with a superset; so do browsers, and pages rely on it.
_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
}
# Labels pages use that Python's codec registry does not know.
_ALIASES = {"x-sjis": "cp932", "windows-31j": "cp932", "x-gbk": "gbk"}
_META_CHARSET = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([\w.:\-]+)""", re.IGNORECASE)
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<title", b"<meta")
_BINARY_STARTS = (b"%pdf", b"pk\x03\x04", b"\x89png", b"gif8", b"\xff\xd8\xff", b"\x1f\x8b")


class FetchError(Exception):
    """A page that could not be fetched, with the reason the pipeline records."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        transient: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.transient = transient
        self.retry_after = retry_after
        self.status = status


@dataclass
class FetchResult:
    url: str  # the final URL, after redirects
    status: int
    content_type: str  # the media type, sniffed when the server sent none
    encoding: str  # the Python codec the text was decoded with
    text: str
    nbytes: int  # size of the decoded body
    redirects: list[str] = field(default_factory=list)  # URLs that answered with a redirect
    elapsed_ms: int = 0


@dataclass(frozen=True)
class _Limits:
    max_bytes: int
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_redirects: int
    user_agent: str


def fetch(
    url: str,
    *,
    on_progress: ProgressCallback | None = None,
    allow_private: bool | None = None,
    address_policy: AddressPolicy | None = None,
    max_bytes: int | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    total_timeout: float | None = None,
    max_redirects: int | None = None,
    user_agent: str | None = None,
) -> FetchResult:
    """GET `url` and return its text, or raise FetchError.

    Limits default to the LIBRARIAN_FETCH_* settings. `address_policy`, when given,
    decides which addresses may be reached (it overrides `allow_private`).
    `on_progress(received, content_length)` reports bytes off the wire at most
    every 64 KiB and once at the end.
    """
    limits = _Limits(
        max_bytes=_pick(max_bytes, settings.LIBRARIAN_FETCH_MAX_BYTES),
        connect_timeout=_pick(connect_timeout, settings.LIBRARIAN_FETCH_CONNECT_TIMEOUT_S),
        read_timeout=_pick(read_timeout, settings.LIBRARIAN_FETCH_READ_TIMEOUT_S),
        total_timeout=_pick(total_timeout, settings.LIBRARIAN_FETCH_TOTAL_TIMEOUT_S),
        max_redirects=_pick(max_redirects, settings.LIBRARIAN_FETCH_MAX_REDIRECTS),
        user_agent=_pick(user_agent, settings.LIBRARIAN_FETCH_USER_AGENT),
    )
    private = _pick(allow_private, bool(settings.LIBRARIAN_FETCH_ALLOW_PRIVATE))
    started = time.monotonic()
    deadline = started + limits.total_timeout
    redirects: list[str] = []
    current = _checked_url(url)
    # A bare transport, not a Client: no environment proxies (they would connect on our
    # behalf, unchecked), no redirect handling of its own, and no kept-alive connections
    # (a pooled TLS connection would skip the next hop's checks).
    with httpx.HTTPTransport(
        trust_env=False, retries=0, limits=httpx.Limits(max_keepalive_connections=0)
    ) as transport:
        while True:
            addresses = _resolve(current, private, address_policy)
            response = _send(transport, current, addresses, limits, deadline)
            try:
                if response.status_code in REDIRECT_STATUSES:
                    current = _next_hop(response, current, redirects, limits.max_redirects)
                    continue
                _check_status(response, current)
                media_type, charset = _content_type(response, current)
                body = _read_body(response, current, limits.max_bytes, deadline, on_progress)
            finally:
                response.close()
            break
    media_type = media_type or _sniff(body)
    if media_type is None:
        raise FetchError("not_html", f"{current} does not look like a web page")
    encoding = _choose_encoding(body, charset, media_type)
    return FetchResult(
        url=str(current),
        status=response.status_code,
        content_type=media_type,
        encoding=encoding,
        text=body.decode(encoding, errors="replace"),
        nbytes=len(body),
        redirects=redirects,
        elapsed_ms=int((time.monotonic() - started) * 1000),
    )


def _pick(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _checked_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError("invalid_url", f"{url} is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError("invalid_url", f"only http and https can be fetched, not {parsed.scheme}:")
    if parsed.userinfo:
        raise FetchError("invalid_url", "URLs with a user name or password are not fetched")
    if not parsed.host:
        raise FetchError("invalid_url", f"{url} has no host")
    return parsed


def _resolve(url: httpx.URL, private: bool, policy: AddressPolicy | None) -> list[IPAddress]:
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        return resolve_checked(host, port, allow_private=private, policy=policy)
    except BlockedAddress as exc:
        raise FetchError("blocked_address", str(exc)) from exc
    except (OSError, UnicodeError) as exc:
        raise FetchError(
            "connection_failed", f"could not resolve {host}: {exc}", transient=True
        ) from exc


def pinned_request(
    url: httpx.URL,
    address: IPAddress,
    *,
    timeout: httpx.Timeout,
    user_agent: str,
) -> httpx.Request:
    """A GET for `url` that connects to `address`, still naming the host for HTTP and TLS."""
    host = url.raw_host.decode("ascii")
    headers = {
        "Host": url.netloc.decode("ascii"),
        "User-Agent": user_agent,
        "Accept": _ACCEPT,
        # Only encodings we inflate ourselves, in bounded steps (see _Inflater).
        "Accept-Encoding": "gzip, deflate",
        "Connection": "close",  # one request per connection, see fetch()
    }
    extensions: dict[str, object] = {"timeout": timeout.as_dict()}
    if url.scheme == "https":
        extensions["sni_hostname"] = host  # also the name the certificate is checked against
    return httpx.Request(
        "GET", url.copy_with(host=str(address)), headers=headers, extensions=extensions
    )


def _send(
    transport: httpx.HTTPTransport,
    url: httpx.URL,
    addresses: list[IPAddress],
    limits: _Limits,
    deadline: float,
) -> httpx.Response:
    for i, address in enumerate(addresses):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timeout = httpx.Timeout(
            connect=min(limits.connect_timeout, remaining),
            read=min(limits.read_timeout, remaining),
            write=min(limits.read_timeout, remaining),
            pool=min(limits.connect_timeout, remaining),
        )
        request = pinned_request(url, address, timeout=timeout, user_agent=limits.user_agent)
        try:
            return transport.handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # A name with several addresses: try the next checked one, as browsers do.
            if i + 1 < len(addresses):
                continue
            raise _transport_error(exc, url) from exc
        except httpx.HTTPError as exc:
            raise _transport_error(exc, url) from exc
    raise FetchError(
        "fetch_timeout", f"{url} took longer than the total time limit", transient=True
    )


def _transport_error(exc: httpx.HTTPError, url: httpx.URL) -> FetchError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return FetchError("fetch_timeout", f"{url} timed out: {detail}", transient=True)
    return FetchError("connection_failed", f"{url} could not be reached: {detail}", transient=True)


def _next_hop(
    response: httpx.Response, current: httpx.URL, redirects: list[str], max_redirects: int
) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise FetchError(
            "http_status", f"{current} redirected nowhere", status=response.status_code
        )
    if len(redirects) >= max_redirects:
        raise FetchError(
            "too_many_redirects", f"{current} redirected more than {max_redirects} times"
        )
    redirects.append(str(current))
    try:
        target = current.join(location)
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError("invalid_url", f"{current} redirected to a bad URL: {location}") from exc
    return _checked_url(target)


def _check_status(response: httpx.Response, url: httpx.URL) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    transient = status in (408, 429) or status >= 500
    raise FetchError(
        "http_status",
        f"{url} answered {status} {response.reason_phrase}".rstrip(),
        transient=transient,
        retry_after=_retry_after(response.headers.get("retry-after")) if transient else None,
        status=status,
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait, from Retry-After in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _content_type(response: httpx.Response, url: httpx.URL) -> tuple[str | None, str | None]:
    """The media type and charset the server declared; refuse types we do not read."""
    header = response.headers.get("content-type", "")
    media_type, *params = (part.strip() for part in header.split(";"))
    media_type = media_type.lower()
    if media_type and media_type not in ACCEPTED_TYPES:
        raise FetchError("not_html", f"{url} is {media_type}, not a web page")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return media_type or None, charset


def _read_body(
    response: httpx.Response,
    url: httpx.URL,
    max_bytes: int,
    deadline: float,
    on_progress: ProgressCallback | None,
) -> bytes:
    length_header = response.headers.get("content-length", "")
    length = int(length_header) if length_header.isdigit() else None
    if length is not None and length > max_bytes:
        raise FetchError("too_large", f"{url} is {length} bytes, over the {max_bytes} cap")
    inflater = _Inflater(response.headers.get("content-encoding", ""))
    parts: list[bytes] = []
    received = decoded = reported = 0
    too_large = FetchError("too_large", f"{url} is larger than the {max_bytes} byte cap")
    try:
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise too_large
            # Counting decoded bytes is what stops a gzip bomb: tiny on the wire, huge inflated.
            for piece in inflater.feed(chunk):
                decoded += len(piece)
                if decoded > max_bytes:
                    raise too_large
                parts.append(piece)
            if time.monotonic() > deadline:
                raise FetchError(
                    "fetch_timeout",
                    f"{url} took longer than the total time limit",
                    transient=True,
                )
            if on_progress is not None and received - reported >= PROGRESS_EVERY:
                reported = received
                on_progress(received, length)
    except httpx.HTTPError as exc:
        raise _transport_error(exc, url) from exc
    if on_progress is not None and received != reported:
        on_progress(received, length)
    return b"".join(parts)


class _Inflater:
    """gzip/deflate decoded in bounded steps, so one small chunk cannot inflate unchecked."""

    def __init__(self, content_encoding: str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise FetchError("not_html", f"unsupported content encoding: {content_encoding}")
        self._active = bool(codings)
        self._raw_deflate_allowed = codings == ["deflate"]
        self._started = False
        # 32 + MAX_WBITS reads a gzip or a zlib header, whichever comes.
        self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._active:
            yield data
            return
        while not self._zlib.eof:
            try:
                out = self._zlib.decompress(data, _INFLATE_STEP)
            except zlib.error as exc:
                if self._started or not self._raw_deflate_allowed:
                    raise FetchError(
                        "connection_failed", f"corrupt compressed body: {exc}"
                    ) from exc
                # Some servers send "deflate" without the zlib header, as raw deflate.
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                self._raw_deflate_allowed = False
                continue
            self._started = True
            data = self._zlib.unconsumed_tail
            if out:
                yield out
            if not data and len(out) < _INFLATE_STEP:
                return


def _text_codec(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when it is not a text encoding."""
    if not label:
        return None
    try:
        label = label.strip().lower()
        name = codecs.lookup(_ALIASES.get(label, label)).name
        b"".decode(name)  # refuses bytes-to-bytes codecs such as base64 and rot13
    except (LookupError, ValueError):
        return None
    return _SUPERSETS.get(name, name)


def _choose_encoding(body: bytes, header_charset: str | None, media_type: str) -> str:
    """BOM, then the header, then <meta>, then UTF-8 if it decodes, then detection."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    declared = _text_codec(header_charset)
    if declared:
        return declared
    if media_type != "text/plain":
        match = _META_CHARSET.search(body[:4096])
        meta = _text_codec(match.group(1).decode("ascii", "replace")) if match else None
        if meta:
            # A page that got as far as an ASCII <meta> is not UTF-16, whatever it says.
            return "utf-8" if meta.startswith("utf-16") else meta
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        best = charset_normalizer.from_bytes(body[: 256 * 1024]).best()
        detected = _text_codec(best.encoding) if best is not None else None
        return detected or "utf-8"
    return "utf-8"


def _sniff(body: bytes) -> str | None:
    """A media type for a body the server did not label: HTML, plain text, or None."""
    head = body[:1024]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        head = head.decode("utf-16", "replace").encode("utf-8")
    head = head.removeprefix(codecs.BOM_UTF8).lstrip().lower()
    if head.startswith(_HTML_STARTS):
        return "text/html"
    if head.startswith(_BINARY_STARTS) or b"\x00" in head:
        return None
    return "text/plain"
