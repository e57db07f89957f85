from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingestion.canonical import InvalidURL, canonical_url, check_submittable


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("  https://example.com/a  ", "https://example.com/a"),
        ("HTTPS://Example.COM/Path", "https://example.com/Path"),
        ("https://bücher.de/", "https://xn--bcher-kva.de/"),
        ("https://ＥＸＡＭＰＬＥ．com/", "https://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a#section-2", "https://example.com/a"),
        ("https://example.com/a?utm_source=x&utm_medium=y&id=7", "https://example.com/a?id=7"),
        ("https://example.com/?fbclid=1&gclid=2&dclid=3&msclkid=4&yclid=5", "https://example.com/"),
        (
            "https://example.com/?mc_cid=1&mc_eid=2&igshid=3&ref_src=4&_hsenc=5&_hsmi=6",
            "https://example.com/",
        ),
        ("https://example.com/?UTM_Campaign=x&q=1", "https://example.com/?q=1"),
        ("https://example.com/?b=2&a=1", "https://example.com/?a=1&b=2"),
        ("https://example.com/?a=2&b=1&a=1", "https://example.com/?a=2&a=1&b=1"),
        ("https://example.com/a/b/", "https://example.com/a/b"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/%7euser/%c3%a9t%C3%A9", "https://example.com/~user/%C3%A9t%C3%A9"),
        ("https://example.com/a%2fb", "https://example.com/a%2Fb"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("https://example.com/café", "https://example.com/caf%C3%A9"),
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://example.com/../../a", "https://example.com/a"),
        ("https://example.com/a/%2E%2E/b", "https://example.com/b"),
        ("https://example.com/?", "https://example.com/"),
        ("https://example.com/?a=1&&b=2", "https://example.com/?a=1&b=2"),
        ("http://[2001:DB8::0001]:8080/", "http://[2001:db8::1]:8080/"),
        ("https://example.com./a", "https://example.com/a"),
    ],
)
def test_it_canonicalises(url: str, expected: str) -> None:
    assert canonical_url(url) == expected
    assert canonical_url(expected) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "example.com",
        "/relative/path",
        "ftp://example.com/file",
        "javascript:alert(1)",
        "data:text/html,<p>hi</p>",
        "file:///etc/passwd",
        "mailto:someone@example.com",
        "http:example.com",
        "http://",
        "http:///path",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com:8o/",
        "http://[::1/",
        "http://1.2.3.4.5/",
        "http://256.0.0.1/",
        "http://good.com\\@evil.com/",
        "http://exa\x00mple.com/",
        "https://" + "a" * 64 + ".com/",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_it_refuses_what_is_not_an_http_url(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        canonical_url(url)
    assert info.value.field == "url"
    assert str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://0177.0.0.1/", "http://127.0.0.1/"),
        ("http://127.1/", "http://127.0.0.1/"),
        ("http://%31%32%37.0.0.1/", "http://127.0.0.1/"),
        ("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
    ],
)
def test_it_spells_addresses_one_way(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://0.0.0.0/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:7f00:1::]/",
        "http://localhost/",
        "http://LOCALHOST:8000/",
        "http://app.localhost/",
        "http://printer.local/",
        "http://metadata.google.internal/",
        "http://intranet/",
        "http://user:secret@example.com/",
        "http://user@example.com/",
        "ftp://example.com/",
        "javascript:alert(document.cookie)",
    ],
)
def test_it_refuses_to_submit(url: str) -> None:
    with pytest.raises(InvalidURL):
        check_submittable(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/a", "http://93.184.215.14/", "http://[2606:4700::1111]/"],
)
def test_it_accepts_public_urls(url: str) -> None:
    assert check_submittable(url, allow_private=False) == canonical_url(url)


def test_it_allows_private_addresses_when_configured() -> None:
    assert check_submittable("http://0x7f.1:8000/a/", allow_private=True) == (
        "http://127.0.0.1:8000/a"
    )
    assert check_submittable("http://localhost/", allow_private=True) == "http://localhost/"


def test_it_refuses_credentials_even_when_private_is_allowed() -> None:
    with pytest.raises(InvalidURL, match="password"):
        check_submittable("http://u:p@localhost/", allow_private=True)


def test_it_follows_the_setting_by_default(settings) -> None:
    settings.LIBRARIAN_FETCH_ALLOW_PRIVATE = False
    with pytest.raises(InvalidURL):
        check_submittable("http://127.0.0.1/")
    settings.LIBRARIAN_FETCH_ALLOW_PRIVATE = True
    assert check_submittable("http://127.0.0.1/") == "http://127.0.0.1/"


_url_like = st.builds(
    lambda scheme, host, rest: f"{scheme}://{host}{rest}",
    st.sampled_from(["http", "https", "HTTP", "hTtPs", "ftp"]),
    st.one_of(
        st.text(max_size=30),
        st.from_regex(r"[a-zA-Z0-9.\-]{1,20}(:[0-9]{0,6})?", fullmatch=True),
        st.sampled_from(["example.com", "[::1]", "0x7f.1", "bücher.de", "1.2.3", "u:p@x.org"]),
    ),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
    | st.from_regex(r"(/[a-z.%0-9]{0,5}){0,5}(\?[a-z_=&%0-9]{0,20})?(#.*)?", fullmatch=True),
)


@given(st.one_of(st.text(), _url_like))
def test_it_is_idempotent_and_only_raises_invalid_url(text: str) -> None:
    try:
        once = canonical_url(text)
    except InvalidURL:
        return
    assert canonical_url(once) == once


@given(st.one_of(st.text(), _url_like), st.booleans())
def test_it_checks_any_text_without_crashing(text: str, allow_private: bool) -> None:
    try:
        result = check_submittable(text, allow_private=allow_private)
    except InvalidURL:
        return
    assert canonical_url(result) == result
