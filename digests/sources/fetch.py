"""HTTP fetching as a good citizen: conditional GET, limits, per-host politeness; httpx errors mapped here, once."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import httpx

from digests.clock import utcnow
from digests.errors import DigestError
from digests.source_config import FetchConfig
from digests.sources.policy import conditional_headers, retry_after_seconds, user_agent, validators

ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
          "text/xml;q=0.9, application/json;q=0.8, text/markdown;q=0.8, text/plain;q=0.7, */*;q=0.5")
_MB = 1024 * 1024


class FetchError(DigestError):
    """A source could not be fetched; the message says why, in words an operator can act on."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class HostWaitError(FetchError):
    """The host asked us (Retry-After) to stay away a while longer: not this source's failure."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """An answer: 304 (``body`` None) or 200 with the body, decoded from gzip, and its validators."""

    status: int
    body: bytes | None
    etag: str | None
    last_modified: str | None
    url: str  # after redirects


def project_version() -> str:
    try:
        return version("hardcore-digest")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0"


class Fetcher:
    """One httpx client for every source: pooled connections, at most ``per_host`` requests per host."""

    def __init__(self, config: FetchConfig, *, proxy: str | None = None, transport: Any = None) -> None:
        self.config = config
        timeout = httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                                write=config.read_timeout, pool=config.total_timeout)
        self.client = httpx.Client(
            timeout=timeout, follow_redirects=True, max_redirects=config.max_redirects, proxy=proxy,
            transport=transport, trust_env=proxy is None,
            headers={"User-Agent": user_agent(project_version(), config.user_agent), "Accept": ACCEPT,
                     "Accept-Encoding": "gzip, deflate"},
            limits=httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency),
        )
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.Semaphore] = {}
        self._held: dict[str, float] = {}  # host -> monotonic time before which we stay away

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _host_slot(self, host: str) -> Any:
        with self._lock:
            slot = self._hosts.setdefault(host, threading.Semaphore(self.config.per_host))
        with slot:
            yield

    def _hold(self, host: str, seconds: float) -> None:
        with self._lock:
            self._held[host] = max(self._held.get(host, 0.0), time.monotonic() + seconds)

    def held_for(self, url: str) -> float:
        """Seconds the URL's host asked us to wait still; 0 when free."""
        with self._lock:
            until = self._held.get(_host(url), 0.0)
        return max(until - time.monotonic(), 0.0)

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
            now: datetime | None = None) -> Fetched:
        """GET url conditionally; FetchError for anything but 200 and 304."""
        wait = self.held_for(url)
        if wait > 0:
            raise HostWaitError(f"{_host(url)} asked us to wait; {wait:.0f} s to go", retry_after=wait)
        headers = conditional_headers(etag, last_modified)
        with self._host_slot(_host(url)):
            try:
                return self._get(url, headers, now or utcnow())
            except httpx.HTTPError as exc:
                raise FetchError(self._reason(exc)) from None

    def _get(self, url: str, headers: dict[str, str], now: datetime) -> Fetched:
        config = self.config
        started = time.monotonic()
        with self.client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            final = str(response.url)
            if status == 304:
                response.read()  # nothing to read, but read: the connection goes back to the pool
                etag, modified = validators(response.headers)
                return Fetched(304, None, etag, modified, final)
            if status >= 400:
                _drain_small(response)
            if status in (429, 503):
                wait = retry_after_seconds(response.headers.get("retry-after"), now)
                if wait is not None:
                    self._hold(_host(url), wait)
                told = f"; Retry-After {wait:.0f} s" if wait is not None else ""
                raise FetchError(f"HTTP {status} {response.reason_phrase}{told}", status=status, retry_after=wait)
            if status >= 400 or status < 200:
                raise FetchError(f"HTTP {status} {response.reason_phrase}", status=status)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > config.max_bytes:
                raise FetchError(f"too large: the server announces {int(declared) / _MB:.1f} MB, the limit is "
                                 f"{config.max_bytes / _MB:.1f} MB (fetch.max_bytes); not downloaded", status=status)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():  # gzip already undone: the limit counts what we keep
                size += len(chunk)
                if size > config.max_bytes:
                    raise FetchError(f"too large: more than {config.max_bytes / _MB:.1f} MB (fetch.max_bytes); "
                                     "stopped reading", status=status)
                if time.monotonic() - started > config.total_timeout:
                    raise FetchError(f"too slow: not complete after {config.total_timeout:g} s "
                                     "(fetch.total_timeout)", status=status)
                chunks.append(chunk)
            body = _as_utf8(b"".join(chunks), response.charset_encoding)
            etag, modified = validators(response.headers)
            return Fetched(status, body, etag, modified, final)

    def _reason(self, exc: httpx.HTTPError) -> str:
        config = self.config
        if isinstance(exc, httpx.TooManyRedirects):
            return f"more than {config.max_redirects} redirects (a redirect loop?)"
        if isinstance(exc, httpx.ConnectTimeout):
            return f"could not connect within {config.connect_timeout:g} s (fetch.connect_timeout)"
        if isinstance(exc, httpx.ReadTimeout):
            return f"no answer within {config.read_timeout:g} s (fetch.read_timeout)"
        if isinstance(exc, httpx.PoolTimeout):
            return "every connection busy for too long (fetch.concurrency)"
        if isinstance(exc, httpx.ProxyError):
            return f"the proxy refused or failed: {exc}"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect: {exc}"
        if isinstance(exc, httpx.RemoteProtocolError):
            return f"the server broke off the answer: {exc}"
        if isinstance(exc, httpx.DecodingError):
            return f"the answer cannot be decoded (broken gzip?): {exc}"
        if isinstance(exc, httpx.UnsupportedProtocol):
            return f"redirected to an address we cannot fetch: {exc}"
        return f"{exc.__class__.__name__}: {exc}"


def _drain_small(response: httpx.Response) -> None:
    """Read a short error page, so that its connection can be used again; a long one is dropped."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) <= 65536:
        response.read()


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _as_utf8(body: bytes, charset: str | None) -> bytes:
    """The body re-encoded as UTF-8 when the server names another charset (ingest reads UTF-8 or GB18030)."""
    if not charset or charset.lower().replace("_", "-") in ("utf-8", "utf8", "us-ascii", "ascii"):
        return body
    try:
        body.decode("utf-8")
        return body  # servers label UTF-8 as ISO-8859-1 by default more often than the reverse
    except UnicodeDecodeError:
        pass
    try:
        return body.decode(charset).encode("utf-8")
    except (LookupError, UnicodeDecodeError):
        return body  # a wrong label: leave the bytes to ingest's own detection
