"""Link helpers shared by the format parsers: absolute http(s) URLs, their hosts, redirects, dedupe."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff]")
_URL = re.compile(r"https?://[^\s<>\"'`\u3000-\u303f\uff01-\uff5e]+", re.IGNORECASE)
# Scheme, optional user info, a host (name or [IPv6]), optional port, then anything but whitespace.
_HTTP_URL = re.compile(
    r"https?://(?:[^\s/?#@\[\]]*@)?(\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]\\]+)(?::\d*)?(?:[/?#][^\s\u3000]*)?\Z",
    re.IGNORECASE,
)
# A lower-case host name without user, port or anything urlsplit would treat specially.
_SIMPLE_HOST = re.compile(r"https?://([a-z0-9.-]+)(?=[/?#]|\Z)")
_URL_TRAILING = ".,;:!?)]}'\"*_~"


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host and no whitespace."""
    return bool(_HTTP_URL.match(url)) and not INVISIBLE.search(url)


def host_of(url: str) -> str:
    """The URL's host, lower-cased, without a leading ``www.`` ("" when there is none)."""
    simple = _SIMPLE_HOST.match(url)  # what urlsplit(url).hostname is for nearly every link
    if simple is not None:
        host = simple.group(1)
    else:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            return ""
    return host.removeprefix("www.")


def unwrap_redirect(url: str) -> str:
    """The target of a known click-through redirector (link.zhihu.com/?target=...), else ``url``."""
    if "link.zhihu.com" not in url:
        return url
    try:
        parts = urlsplit(url)
        target = parse_qs(parts.query).get("target", [""])[0]
    except ValueError:
        return url
    return target if parts.hostname == "link.zhihu.com" and is_http_url(target) else url


def find_urls(text: str) -> list[str]:
    """Bare http(s) URLs in running text, trailing punctuation trimmed, in order."""
    if "http" not in text and "HTTP" not in text:
        return []
    urls = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_URL_TRAILING)
        if is_http_url(url):
            urls.append(url)
    return urls


def unique(values: Iterable[str]) -> list[str]:
    """Values in first-seen order, duplicates and empty strings dropped."""
    return list(dict.fromkeys(value for value in values if value))
