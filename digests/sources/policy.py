"""Pure deciders of fetching: which headers make a GET conditional, when to look again, when to give up."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from fnmatch import fnmatchcase

RETRY_AFTER_MAX = 7 * 86400.0  # a server asking for more than a week is treated as asking for a week
_FEED_ROOT = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>\s*)?(?:(?:<!--.*?-->|<!DOCTYPE[^>]*>|"
                        rb"<\?xml-stylesheet[^>]*\?>)\s*)*<((?:[A-Za-z_][\w.\-]*:)?(?:rss|feed|RDF))[\s>/]",
                        re.DOTALL)
_TRAILER = re.compile(rb"(?:\s|<!--.*?-->)*\Z", re.DOTALL)


def user_agent(version: str, configured: str = "") -> str:
    """The User-Agent every request sends: the project, its version, and what the requests are."""
    return configured.strip() or f"hardcore-digest/{version} (digestbot feed fetcher)"


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from what the last full answer said; {} the first time."""
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def validators(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(ETag, Last-Modified) of a response, to send back next time; None where absent."""
    etag = (headers.get("etag") or "").strip() or None
    last_modified = (headers.get("last-modified") or "").strip() or None
    return etag, last_modified


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return min(max((moment - now).total_seconds(), 0.0), RETRY_AFTER_MAX)


def failure_delay(failures: int, *, interval: float, base: float, maximum: float, rand: float) -> float:
    """Seconds to wait after the n-th failure in a row: exponential, with "equal jitter".

    Never sooner than the source's own interval would look again (a failing server gets fewer
    requests, not more); ``rand`` in [0, 1) spreads sources that failed together.
    """
    step = max(interval, base) * 2 ** min(max(failures - 1, 0), 30)
    delay = min(max(maximum, interval), step)
    return delay / 2 + delay / 2 * rand


def next_fetch_at(now: datetime, *, interval: float, failures: int, retry_after: float | None = None,
                  base: float = 60.0, maximum: float = 86400.0, rand: float = 0.5) -> datetime:
    """When to fetch a source next: its interval after a success, a backoff after failures, and
    never before the server's Retry-After."""
    if failures <= 0:
        delay = float(interval)
    else:
        delay = failure_delay(failures, interval=interval, base=base, maximum=maximum, rand=rand)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return now + timedelta(seconds=delay)


def switches_off(failures_before: int, failures_now: int, max_failures: int) -> bool:
    """True exactly once: on the failure that reaches max_failures in a row (the admins hear it once)."""
    return failures_before < max_failures <= failures_now


def truncation_problem(data: bytes) -> str | None:
    """Why an RSS/Atom body is cut short (its root element never closes), or None.

    feedparser reads the entries before the cut and says nothing: a half-sent feed would be
    stored as if it were the whole feed.
    """
    match = _FEED_ROOT.match(data[:4096])
    if match is None:
        return None
    root = match.group(1)
    end = data.rfind(b"</" + root)
    close = data.find(b">", end) if end >= 0 else -1
    if close < 0 or _TRAILER.match(data, close + 1) is None:
        return f"truncated XML: the feed ends before its closing </{root.decode('ascii', 'replace')}>"
    return None


def is_selected(relative_path: str, patterns: Sequence[str]) -> bool:
    """Whether a file of a folder or repository is read: no patterns means every file but hidden ones.

    Patterns are globs on the path relative to the source's root; ``*`` crosses folders, and a
    leading ``**/`` also matches at the root.
    """
    if any(part.startswith(".") for part in relative_path.split("/")):
        return False
    return not patterns or any(fnmatchcase(relative_path, pattern)
                               or (pattern.startswith("**/") and fnmatchcase(relative_path, pattern[3:]))
                               for pattern in patterns)
