"""Links and hashtags as Telegram accepts them: http(s) hrefs, source names from hosts, ``#tags``."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from digests.formatting.telegram_html import clean_message_line

_HREF_CANDIDATES = re.compile(r'[^!#-;=?-\[\]_a-z~]')  # all but the ASCII that is safe in an href
_HOST_LABEL = re.compile(r"^(?:[a-z0-9_]|[^\x00-\x7f])(?:[a-z0-9_-]|[^\x00-\x7f])*$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def _percent_encode(match: re.Match[str]) -> str:
    c = match.group()
    if c.isascii() or c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn"):
        return "".join(f"%{b:02X}" for b in c.encode("utf-8"))
    return c  # readable non-ASCII (letters, CJK ...) stays; Telegram accepts it


def _percent_encode_unsafe(url: str) -> str:
    return _HREF_CANDIDATES.sub(_percent_encode, url)


def _valid_host(host: str) -> bool:
    if _IPV4.match(host):
        return all(int(part) <= 255 for part in host.split("."))
    labels = host.split(".")
    if len(labels) < 2 or len(host) > 253:
        return False
    if not all(0 < len(label) <= 63 and _HOST_LABEL.match(label) for label in labels):
        return False
    return any(not c.isdigit() for c in labels[-1])


@lru_cache(maxsize=4096)
def telegram_href(url: str | None) -> str | None:
    """An absolute http(s) URL Telegram accepts as a link, or None (relative, other scheme, bad host).

    Spaces, quotes and other characters that are unsafe in an href are percent-encoded; non-ASCII
    stays readable (Telegram accepts it, IDN hosts included).
    """
    url = clean_message_line(url)
    if not url:
        return None
    url = _percent_encode_unsafe(url)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or not _valid_host(host):
        return None
    if port is not None and not 0 < port < 65536:
        return None
    return parts.scheme.lower() + url[len(parts.scheme):]


def source_name(url: str | None) -> str:
    """A readable source name from a URL: its host without "www." (IDN decoded), or ""."""
    href = telegram_href(url)
    if not href:
        return ""
    host = urlsplit(href).hostname or ""
    host = host.removeprefix("www.")
    try:
        return host.encode("ascii").decode("idna") if "xn--" in host else host
    except (UnicodeError, ValueError):
        return host


# Names whose punctuation carries the meaning; dropping it would turn "C++" into "#C".
_HASHTAG_WORDS = {"c++": "cpp", "c#": "csharp", "f#": "fsharp", ".net": "dotnet"}


def _is_hashtag_letter(c: str) -> bool:
    return unicodedata.category(c)[0] == "L"


@lru_cache(maxsize=4096)
def hashtag(word: str | None) -> str | None:
    """``#word`` as Telegram recognises a hashtag (letters, digits, "_"; a letter needed), or None."""
    text = clean_message_line(word)
    text = _HASHTAG_WORDS.get(text.casefold(), text)
    chars = [c if c == "_" or _is_hashtag_letter(c) or unicodedata.category(c) == "Nd" else "_"
             for c in text]
    tag = re.sub("_+", "_", "".join(chars)).strip("_")[:48].strip("_")
    if not any(_is_hashtag_letter(c) for c in tag):
        return None
    return "#" + tag


def hashtags_for(words: Iterable[str], limit: int) -> list[str]:
    """Distinct hashtags (case-insensitive) of ``words``, at most ``limit``."""
    seen: set[str] = set()
    result: list[str] = []
    for word in words:
        tag = hashtag(word)
        if tag and tag.casefold() not in seen and len(result) < limit:
            seen.add(tag.casefold())
            result.append(tag)
    return result
