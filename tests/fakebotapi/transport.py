"""HTTP for the fake: a threaded server that hands each request to the Bot API or the control API.

An answer is (status, JSON payload), or DROP to close the connection without one.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class Drop:
    """Answer nothing: close the connection."""


DROP = Drop()
Reply = tuple[int, dict[str, Any]]
# (URL path, Content-Type, body, query string) of a Bot API request.
ApiHandler = Callable[[str, str, bytes, str], Reply | Drop]
# (HTTP method, endpoint name, body) of a control request.
ControlHandler = Callable[[str, str, bytes], Reply]


class HttpServer(ThreadingHTTPServer):
    """Serves ``/bot<token>/<method>`` to ``api`` and ``/control/<name>`` to ``control``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # PTB opens many connections at once in soak tests; the default is 5

    def __init__(self, address: tuple[str, int], api: ApiHandler, control: ControlHandler) -> None:
        self.api = api
        self.control = control
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        """Serve from a background thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="fakebotapi", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the connections still open."""
        self.shutdown()
        self.close_connections()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads parked on keep-alive connections."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, cancelled long poll) is normal here, not an error.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: HttpServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path.startswith("/control/"):
            reply: Reply | Drop = self.server.control(self.command, url.path.removeprefix("/control/"), body)
        else:
            reply = self.server.api(url.path, self.headers.get("Content-Type", ""), body, url.query)
        if isinstance(reply, Drop):
            self.close_connection = True
            return
        status, payload = reply
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass
