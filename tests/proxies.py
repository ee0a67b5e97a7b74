"""Two small proxies on 127.0.0.1 for the tests: an HTTP forward proxy and a SOCKS5 proxy (no auth).

Each records what it was asked to reach, so a test can tell that traffic went through it.
"""

from __future__ import annotations

import http.client
import select
import socket
import socketserver
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "te", "upgrade"}


class ForwardProxy:
    """Answers absolute-URI requests (GET/POST ...) by making them itself."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                proxy.seen.append(f"{self.command} {self.path}")
                target = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
                path = target.path + (f"?{target.query}" if target.query else "")
                connection.request(self.command, path or "/", body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_POST = _forward  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Socks5Proxy:
    """RFC 1928, CONNECT only, no authentication."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client: socket.socket = self.request
                _version, methods = client.recv(2)
                client.recv(methods)
                client.sendall(b"\x05\x00")
                _version, _command, _reserved, kind = client.recv(4)
                if kind == 1:
                    host = socket.inet_ntoa(client.recv(4))
                elif kind == 3:
                    host = client.recv(client.recv(1)[0]).decode()
                else:
                    host = socket.inet_ntop(socket.AF_INET6, client.recv(16))
                (port,) = struct.unpack("!H", client.recv(2))
                proxy.seen.append((host, port))
                upstream = socket.create_connection((host, port), timeout=30)
                client.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("0.0.0.0") + struct.pack("!H", 0))
                sockets = [client, upstream]
                try:
                    while True:
                        ready, _, _ = select.select(sockets, [], [], 30)
                        if not ready:
                            return
                        for sock in ready:
                            data = sock.recv(65536)
                            if not data:
                                return
                            (upstream if sock is client else client).sendall(data)
                except OSError:
                    return
                finally:
                    upstream.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"socks5://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Socks5Proxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
