"""One spelling per page: canonical URLs, and the check a URL must pass to be submitted.

The canonical URL is the library's identity for a page (deduplication, the unique
key of an item), so two spellings of the same address must give the same string,
and canonicalising a canonical URL must change nothing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import idna
from django.conf import settings

from ingestion.netcheck import ends_in_number, is_public_address, parse_ip_host

MAX_URL_LENGTH = 2048  # the width of Job.canonical_url and LibraryItem.url

TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid",
        "twclid", "ttclid", "li_fat_id", "igshid", "mc_cid", "mc_eid", "mkt_tok",
        "ref_src", "ref_url", "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp",
        "_ga", "_gl", "oly_anon_id", "oly_enc_id", "vero_id", "vero_conv", "wickedid",
        "rb_clickid", "s_cid",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_",)

# Names that only mean something on the machine or the network the server sits in.
PRIVATE_HOSTNAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan")

_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?")
_HEX = "0123456789abcdefABCDEF"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = "!$&'()*+,;="
_PATH_SAFE = _UNRESERVED | frozenset(_SUB_DELIMS + ":@/")
_QUERY_SAFE = _UNRESERVED | frozenset(_SUB_DELIMS + ":@/?")
_USERINFO_SAFE = _UNRESERVED | frozenset(_SUB_DELIMS + ":")


class InvalidURL(ValueError):
    """A URL the library cannot or will not fetch; the message says why."""

    field = "url"


@dataclass(frozen=True)
class _Parts:
    scheme: str
    userinfo: str | None
    host: str
    port: int | None
    path: str
    query: str | None


def _normalise_escapes(text: str, safe: frozenset[str]) -> str:
    """Decode escapes of unreserved characters, upper-case the rest, escape what must be."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        escape = text[i + 1 : i + 3]
        if char == "%" and len(escape) == 2 and all(c in _HEX for c in escape):
            decoded = chr(int(escape, 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + escape.upper())
            i += 3
            continue
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, on a path that starts with "/"."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    # A path ending in a dot segment names a directory: keep its trailing slash.
    if path.split("/")[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)


def _is_tracking(key: str) -> bool:
    name = key.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _canonical_query(query: str) -> str | None:
    kept: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        raw_key, sep, raw_value = piece.partition("=")
        key = _normalise_escapes(raw_key, _QUERY_SAFE - {"=", "&"})
        value = _normalise_escapes(raw_value, _QUERY_SAFE - {"&"})
        if _is_tracking(key):
            continue
        kept.append((key, f"{key}{sep}{value}"))
    # Sorting on the key only keeps repeated keys (a=2&a=1) in their meaningful order.
    kept.sort(key=lambda pair: pair[0])
    return "&".join(text for _, text in kept) or None


def _canonical_host(raw: str) -> str:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise InvalidURL("the URL's IPv6 address is missing its closing bracket")
        ip = parse_ip_host(raw)
        if not isinstance(ip, ipaddress.IPv6Address) or "%" in raw:
            raise InvalidURL(f"{raw} is not a valid IPv6 address")
        return f"[{ip.compressed}]"
    host = _percent_decode(raw)
    if not host:
        raise InvalidURL("the URL has no host")
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidURL(f"{raw} is not a valid host name") from exc
    host = host.lower().removesuffix(".")
    if ends_in_number(host):
        ip = parse_ip_host(host)
        if ip is None:
            raise InvalidURL(f"{raw} is not a valid IPv4 address")
        return str(ip)
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise InvalidURL(f"{raw} is not a valid host name")
    return host


def _percent_decode(text: str) -> str:
    """Browsers decode escapes in a host name before they look it up; so must we."""
    if "%" not in text:
        return text
    data = bytearray()
    i = 0
    while i < len(text):
        escape = text[i + 1 : i + 3]
        if text[i] == "%" and len(escape) == 2 and all(c in _HEX for c in escape):
            data.append(int(escape, 16))
            i += 3
        else:
            data.extend(text[i].encode("utf-8", "surrogatepass"))
            i += 1
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidURL(f"{text} is not a valid host name") from exc


def _parse(url: str) -> _Parts:
    if not isinstance(url, str):
        raise InvalidURL("the URL must be text")
    # Browsers drop tabs and newlines anywhere in a URL; other control characters are errors.
    text = re.sub(r"[\t\n\r]", "", url.strip(" \t\n\r\x0b\x0c"))
    if not text:
        raise InvalidURL("the URL is empty")
    if _CONTROL.search(text):
        raise InvalidURL("the URL contains control characters")
    match = _SCHEME.match(text)
    if match is None:
        raise InvalidURL("the URL must be absolute, starting with http:// or https://")
    scheme = match.group(1).lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(f"only http and https URLs can be fetched, not {scheme}:")
    rest = text[match.end() :]
    if not rest.startswith("//"):
        raise InvalidURL("the URL must have a host, as in https://example.com/")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, rest = rest[:end], rest[end:]
    if "\\" in authority:
        # A browser reads "\" as "/" here, so the host it sees differs from ours: refuse.
        raise InvalidURL("the URL contains a backslash in its host")
    rest = rest.split("#", 1)[0]
    path, qmark, query = rest.partition("?")

    userinfo: str | None = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
    if authority.startswith("["):
        close = authority.find("]")
        host_text, port_text = authority[: close + 1], authority[close + 1 :]
        if close < 0 or (port_text and not port_text.startswith(":")):
            raise InvalidURL("the URL's IPv6 address is malformed")
        port_text = port_text[1:]
    else:
        host_text, _, port_text = authority.partition(":")
    port: int | None = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
            raise InvalidURL(f"{port_text} is not a valid port")
        port = int(port_text)
    return _Parts(scheme, userinfo, host_text, port, path, query if qmark else None)


def canonical_url(url: str) -> str:
    """The one spelling of `url` the library keys pages by; raises InvalidURL."""
    parts = _parse(url)
    host = _canonical_host(parts.host)
    port = parts.port
    if (parts.scheme, port) in (("http", 80), ("https", 443)):
        port = None
    path = _remove_dot_segments(_normalise_escapes(parts.path, _PATH_SAFE) or "/")
    path = path.rstrip("/") or "/"
    query = _canonical_query(parts.query) if parts.query is not None else None

    result = f"{parts.scheme}://"
    if parts.userinfo is not None:
        result += _normalise_escapes(parts.userinfo, _USERINFO_SAFE) + "@"
    result += host + (f":{port}" if port is not None else "") + path
    if query:
        result += "?" + query
    if len(result) > MAX_URL_LENGTH:
        raise InvalidURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    return result


def check_submittable(url: str, *, allow_private: bool | None = None) -> str:
    """The canonical URL, if the library may fetch it; raises InvalidURL with the reason.

    Only literal addresses and well-known private names are judged here; names
    that resolve to private addresses are caught at fetch time, after DNS.
    """
    if allow_private is None:
        allow_private = bool(settings.LIBRARIAN_FETCH_ALLOW_PRIVATE)
    canonical = canonical_url(url)
    parts = _parse(canonical)
    if parts.userinfo is not None:
        raise InvalidURL("URLs with a user name or password cannot be submitted")
    if allow_private:
        return canonical
    ip = parse_ip_host(parts.host)
    if ip is not None and not is_public_address(ip):
        raise InvalidURL(f"{ip} is not a public address")
    if ip is None and (
        parts.host in PRIVATE_HOSTNAMES
        or parts.host.endswith(PRIVATE_SUFFIXES)
        or "." not in parts.host
    ):
        raise InvalidURL(f"{parts.host} is not a public host name")
    return canonical
