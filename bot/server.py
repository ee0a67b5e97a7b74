"""The HTTP endpoint of `digestbot run`: /healthz (JSON, 200 or 503) and /metrics (Prometheus text).

Tornado, because python-telegram-bot's own webhook server is tornado (its `webhooks` extra): one
HTTP stack on the event loop the bot already runs, no second framework.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bot.config import BotConfig
from bot.health import check_health
from bot.metrics import make_registry, render
from digests.errors import DigestError
from digests.store.db import Database

log = logging.getLogger(__name__)


class _Health(tornado.web.RequestHandler):
    def initialize(self, server: ServiceServer) -> None:
        self.server = server

    async def get(self) -> None:
        verdict = await asyncio.to_thread(self.server.health)
        self.set_status(200 if verdict.ok else 503)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(verdict.as_json(), ensure_ascii=False, default=str))


class _Metrics(tornado.web.RequestHandler):
    def initialize(self, server: ServiceServer) -> None:
        self.server = server

    async def get(self) -> None:
        body = await asyncio.to_thread(render, self.server.registry)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # A scrape every few seconds is not news; errors inside a handler are logged by tornado itself.
    log.debug("%d %s %.1f ms", handler.get_status(), handler.request.uri, 1000 * handler.request.request_time())


class ServiceServer:
    """Serves the health check of one worker (its own heartbeat) and the metrics of its database."""

    def __init__(self, db: Database, config: BotConfig, *, worker: str) -> None:
        self.db = db
        self.config = config
        self.worker = worker
        self.registry = make_registry(db)
        self._http: HTTPServer | None = None
        self.port: int | None = None

    def health(self) -> Any:
        return check_health(self.db, self.config, workers=self.worker)

    async def start(self) -> None:
        """Listen on server.host:server.port (port 0: any free port, then self.port says which)."""
        host, port = self.config.server.host, self.config.server.port
        try:
            sockets = bind_sockets(port, host, family=socket.AF_UNSPEC)
        except OSError as exc:
            raise DigestError(f"server: cannot listen on {host}:{port}: {exc.strerror or exc} "
                              "(server.host, server.port)") from None
        app = tornado.web.Application([(r"/healthz", _Health, {"server": self}),
                                       (r"/metrics", _Metrics, {"server": self})],
                                      log_function=_log_request)
        self._http = HTTPServer(app)
        self._http.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", host, self.port)

    async def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            await self._http.close_all_connections()
            self._http = None
