"""Helpers for the service tests: a bot running with its HTTP endpoint, scrapes, polling for a state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.config import BotConfig as Config
from digests.store.db import Database
from tests.publishing_helpers import running_application

# Fast beats and a short "stuck" so the tests see the verdict change within a second or two.
FAST_SERVER = {"enabled": True, "host": "127.0.0.1", "port": 0, "heartbeat_seconds": 0.2,
               "stuck_after_minutes": 0.01}


@dataclass
class Served:
    application: Any
    url: str  # http://127.0.0.1:PORT
    client: httpx.AsyncClient

    async def health(self) -> tuple[int, dict[str, Any]]:
        response = await self.client.get(f"{self.url}/healthz")
        return response.status_code, response.json()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of a /metrics scrape: (name, sorted labels) -> value."""
        response = await self.client.get(f"{self.url}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


@asynccontextmanager
async def serving(config: Config, db: Database) -> AsyncIterator[Served]:
    """build_application with server: enabled, started like `digestbot run` starts it (jobs running)."""
    async with running_application(config, db) as application:
        await application.start()
        try:
            server = application.bot_data["server"]
            async with httpx.AsyncClient(timeout=10) as client:
                yield Served(application, f"http://127.0.0.1:{server.port}", client)
        finally:
            if application.running:
                await application.stop()
            assert application.post_shutdown is not None
            await application.post_shutdown(application)


async def eventually(probe: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool], *,
                     timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Call probe until accept(result); the last result in the failure message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if accept(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last: {result!r}")
        await asyncio.sleep(interval)
