"""The health check /healthz and `digestbot health` share, and the heartbeat `digestbot run` keeps."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.config import BotConfig
from digests.clock import utcnow
from digests.health import HealthVerdict, decide
from digests.store import health as store_health
from digests.store.db import Database

if TYPE_CHECKING:
    from telegram.ext import Application, ContextTypes

log = logging.getLogger(__name__)
HEARTBEAT_JOB = "heartbeat"


def this_worker() -> str:
    """The heartbeat's name for this process: host and pid, as the publisher names its leases."""
    return f"{socket.gethostname()}:{os.getpid()}"


def this_host() -> str:
    """The prefix of every worker name on this machine (a Docker container is a machine here)."""
    return f"{socket.gethostname()}:"


def check_health(db: Database, config: BotConfig, *, workers: str | None, require_scheduler: bool = True,
                 now: datetime | None = None) -> HealthVerdict:
    """Read the facts and decide (blocking: it reads the database)."""
    facts = store_health.read_health_facts(db)
    return decide(facts, now or utcnow(), stuck_after=timedelta(minutes=config.server.stuck_after_minutes),
                  heartbeat_every=timedelta(seconds=config.server.heartbeat_seconds), workers=workers,
                  require_scheduler=require_scheduler)


async def _heartbeat(context: ContextTypes.DEFAULT_TYPE) -> None:
    db: Database = context.application.bot_data["db"]
    try:
        await asyncio.to_thread(store_health.beat, db, context.application.bot_data["worker"], utcnow())
    except store_health.DatabaseUnavailable as exc:  # /healthz says so; the next beat tries again
        log.warning("heartbeat not recorded: %s", exc)


def schedule_heartbeat(application: Application) -> None:
    """A job that records, every server.heartbeat_seconds, that this scheduler runs jobs."""
    config: BotConfig = application.bot_data["config"]
    application.bot_data.setdefault("worker", this_worker())
    assert application.job_queue is not None
    application.job_queue.run_repeating(
        _heartbeat, interval=config.server.heartbeat_seconds, first=0, name=HEARTBEAT_JOB,
        job_kwargs={"id": HEARTBEAT_JOB, "replace_existing": True, "coalesce": True, "max_instances": 1})


async def forget_heartbeat(application: Application) -> None:
    worker = application.bot_data.get("worker")
    if worker is None:
        return
    try:
        await asyncio.to_thread(store_health.forget, application.bot_data["db"], worker)
    except store_health.DatabaseUnavailable as exc:  # stopping anyway; the heartbeat goes stale on its own
        log.warning("heartbeat not removed: %s", exc)
