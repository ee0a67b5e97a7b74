"""A real HTTP server on 127.0.0.1 for the sources tests: fixture feeds and documents, and faults.

Each path is a Route: a body served with ETag / Last-Modified (answering a matching conditional
GET with 304) and gzip when asked, or a fault: a status (500, 429 + Retry-After, 503), a server
that hangs past the read timeout or drips bytes, a huge body, a redirect loop, a body cut short.
Every request is recorded with its headers.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    mode: str = "ok"  # ok | status | hang | drip | huge | loop | truncate
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    announce_length: bool = True  # huge: send a Content-Length (or stream without one)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class FeedServer:
    """ThreadingHTTPServer on an ephemeral port; routes may change while it runs."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests answered at once (a per-host limit shows here)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without this, Nagle's algorithm and
                # the client's delayed ACK add 40 ms to every answer with a body.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:  # noqa: N802
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._handle(self)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # as a real server's backlog: no SYN dropped when many connect at once

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="feed-server", daemon=True)

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes | str, *, content_type: str = "application/rss+xml; charset=utf-8",
              validators: bool = True, **kwargs: Any) -> Route:
        """Serve body at path, with a fresh ETag and Last-Modified (unless validators=False)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        route = Route(data, content_type, **kwargs)
        if validators:
            route.etag = f'"v{abs(hash(data)) % 10**12}"'
            route.last_modified = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
        with self.lock:
            self.routes[path] = route
        return route

    def fault(self, path: str, mode: str, **kwargs: Any) -> Route:
        route = Route(mode=mode, **kwargs)
        with self.lock:
            self.routes[path] = route
        return route

    def requests_for(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    # -- answering

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.requests.append(Request(path, headers))
            route = self.routes.get(path)
        if route is None:
            return self._send(handler, 404, b"not found", "text/plain")
        if route.mode == "ok":
            if route.delay:
                self.closing.wait(route.delay)
            if (route.etag and headers.get("if-none-match") == route.etag) or (
                    route.last_modified and not route.etag and headers.get("if-modified-since") == route.last_modified):
                return self._send(handler, 304, b"", None, route)
            body = route.body
            encoding = None
            if "gzip" in headers.get("accept-encoding", ""):
                body, encoding = gzip.compress(body), "gzip"
            return self._send(handler, 200, body, route.content_type, route, encoding)
        if route.mode == "status":
            extra = {"Retry-After": route.retry_after} if route.retry_after else {}
            return self._send(handler, route.status, b"try later", "text/plain", extra=extra)
        if route.mode == "loop":
            return self._send(handler, 302, b"", "text/plain", extra={"Location": path})
        if route.mode == "hang":
            self.closing.wait(route.delay)
            return self._send(handler, 200, b"<rss></rss>", "application/rss+xml")
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        if route.mode == "truncate":
            handler.send_header("Content-Length", str(len(route.body) * 2))
            handler.end_headers()
            handler.wfile.write(route.body)
            handler.close_connection = True
            return None
        if route.mode == "huge" and route.announce_length:
            handler.send_header("Content-Length", str(200 * 1024 * 1024))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        chunk = b"<!-- " + b"x" * 65536 + b" -->"
        try:
            while not self.closing.is_set():
                handler.wfile.write(chunk if route.mode == "huge" else b" ")
                if route.mode == "drip":
                    self.closing.wait(route.delay)
        except OSError:  # the client stopped reading: what a good client does
            pass
        return None

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str | None,
              route: Route | None = None, encoding: str | None = None, extra: dict[str, str] | None = None) -> None:
        handler.send_response(status)
        if content_type:
            handler.send_header("Content-Type", content_type)
        if route is not None and route.etag:
            handler.send_header("ETag", route.etag)
        if route is not None and route.last_modified:
            handler.send_header("Last-Modified", route.last_modified)
        if encoding:
            handler.send_header("Content-Encoding", encoding)
        for name, value in (extra or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# Fixture documents, written here (not copied from anywhere)


@dataclass(frozen=True)
class Entry:
    title: str
    url: str
    summary: str
    day: int = 1


def entries(prefix: str, count: int, start: int = 0) -> list[Entry]:
    return [Entry(f"{prefix} 新闻 {n}", f"https://news.example.org/{prefix}/{n}", f"{prefix} 第 {n} 条新闻的摘要。",
                  1 + n % 28) for n in range(start, start + count)]


def rss(title: str, items: list[Entry]) -> str:
    body = "".join(
        f"<item><title>{escape(e.title)}</title><link>{escape(e.url)}</link><guid>{escape(e.url)}</guid>"
        f"<description>{escape(e.summary)}</description>"
        f"<pubDate>{format_datetime(datetime(2024, 5, e.day, 8, 0, tzinfo=UTC))}</pubDate></item>"
        for e in items)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<link>https://news.example.org/</link><description>fixture</description>{body}</channel></rss>\n")


def atom(title: str, items: list[Entry]) -> str:
    body = "".join(
        f'<entry><title>{escape(e.title)}</title><link href="{escape(e.url)}"/><id>{escape(e.url)}</id>'
        f"<updated>2024-05-{e.day:02d}T08:00:00Z</updated><summary>{escape(e.summary)}</summary></entry>"
        for e in items)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{escape(title)}</title><id>urn:fixture:{escape(title)}</id>"
            f"<updated>2024-05-01T00:00:00Z</updated>{body}</feed>\n")


def json_feed(title: str, items: list[Entry]) -> str:
    import json

    return json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": title, "home_page_url": "https://news.example.org/",
        "items": [{"id": e.url, "url": e.url, "title": e.title, "content_text": e.summary,
                   "date_published": f"2024-05-{e.day:02d}T08:00:00+08:00", "tags": ["fixture"]} for e in items],
    }, ensure_ascii=False)


def linuxcn_markdown(number: int, sections: list[Entry]) -> str:
    """A raw 硬核观察 post as linux.cn's repository stores it: front matter, then a ### section per item."""
    parts = [f"### {e.title}\n\n{e.summary}\n\n> **[消息来源：示例新闻]({e.url})**\n\n> 老王点评：值得一看。"
             for e in sections]
    return (f"---\nauthor: 硬核老王\ncategories: 硬核观察\ndate: '2024-05-01 08:00:00'\nid: {number}\n"
            f"permalink: /article-{number}-1.html\ntitle: '硬核观察 #{number}'\n---\n\n" + "\n\n".join(parts) + "\n")
