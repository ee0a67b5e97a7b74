"""Channel slots as JobQueue (APScheduler) jobs, built from the schedules stored in the database."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from telegram.ext import Application, ContextTypes, JobQueue

from digests.channels import settings_of
from digests.clock import utcnow
from digests.config import ChannelConfig, parse_interval
from digests.publishing import slots
from digests.publishing.selection import in_quiet_hours
from digests.store.channels import active_channel, active_channels
from digests.store.db import Database
from digests.store.posts import last_slot

log = logging.getLogger(__name__)
SLOT_PREFIX = "slot:"
DRAIN_JOB = "drain"


def slot_job_id(channel: str, index: int) -> str:
    return f"{SLOT_PREFIX}{channel}:{index}"


class GridTrigger(BaseTrigger):
    """Fires an ``every N`` entry on its fixed grid (digests.publishing.slots), whenever the bot started."""

    __slots__ = ("entry", "interval", "timezone")

    def __init__(self, entry: str, timezone: ZoneInfo) -> None:
        seconds = parse_interval(entry)
        if seconds is None:
            raise ValueError(f"{entry!r} is not an 'every N' entry")
        self.entry, self.interval, self.timezone = entry, timedelta(seconds=seconds), timezone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        # No previous firing: the next grid point from now on (now itself when it is one).
        after = previous_fire_time if previous_fire_time is not None else now - timedelta(microseconds=1)
        return slots.next_slot(self.entry, after, self.timezone)

    def __str__(self) -> str:
        return f"grid[{self.entry}, {self.timezone}]"

    def __repr__(self) -> str:
        return f"<GridTrigger (entry={self.entry!r}, timezone={str(self.timezone)!r})>"


def slot_trigger(entry: str, settings: ChannelConfig) -> BaseTrigger:
    """The APScheduler trigger of one schedule entry: its grid for every N, cron otherwise."""
    zone = ZoneInfo(settings.timezone)
    if parse_interval(entry) is not None:
        return GridTrigger(entry, zone)
    return CronTrigger.from_crontab(entry, timezone=zone)


def schedule_channel(job_queue: JobQueue, name: str, settings: ChannelConfig, *, misfire_grace: int) -> list[str]:
    """(Re)create the slot jobs of one channel; explicit ids so a change replaces, never duplicates."""
    unschedule_channel(job_queue, name)
    ids = []
    for index, entry in enumerate(settings.schedule):
        job_id = slot_job_id(name, index)
        # coalesce: a slot missed several times runs once; misfire_grace_time: a slot late by
        # less than this (a busy loop, a short stall) still runs. Downtime is handled at start.
        job_queue.run_custom(run_slot_job, name=job_id,
                             data={"channel": name, "entry": entry, "timezone": settings.timezone},
                             job_kwargs={"trigger": slot_trigger(entry, settings), "id": job_id,
                                         "replace_existing": True, "coalesce": True,
                                         "misfire_grace_time": misfire_grace, "max_instances": 1})
        ids.append(job_id)
    return ids


def unschedule_channel(job_queue: JobQueue, name: str) -> None:
    for job in job_queue.jobs():
        if job.name and job.name.startswith(f"{SLOT_PREFIX}{name}:"):
            job.schedule_removal()


async def run_slot_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """A slot fired: plan the channel's posts and send them (quiet hours and pause respected)."""
    job = context.job
    assert job is not None and isinstance(job.data, dict)
    now = utcnow()
    slot_at = slots.firing_slot(job.data["entry"], now, job.data["timezone"])
    await run_slot(context.application, job.data["channel"], slot_at or now.replace(second=0, microsecond=0))


async def run_slot(application: Application, name: str, slot_at: datetime) -> None:
    """Run one slot unless the channel is gone, retired or in its quiet hours (planning checks the pause).

    One slot of a channel at a time in this process: a start-up's catch-up and a firing of the
    same slot would otherwise both select (planning stays idempotent across workers).
    """
    locks: dict[str, asyncio.Lock] = application.bot_data.setdefault("slot_locks", {})
    async with locks.setdefault(name, asyncio.Lock()):
        await _run_slot(application, name, slot_at)


async def _run_slot(application: Application, name: str, slot_at: datetime) -> None:
    db: Database = application.bot_data["db"]
    publisher = application.bot_data["publisher"]
    with db.session() as session:
        channel = active_channel(session, name)  # 10,000 jobs firing at once: not all channels each
        if channel is None:
            return
        settings = settings_of(channel)
    if in_quiet_hours(utcnow(), settings):
        log.info("slot of %s skipped: quiet hours %s", name, settings.quiet_hours)
        return
    posts = await publisher.run_slot(name, slot_at=slot_at)
    log.info("slot %s of %s: %d post(s) planned", slot_at.isoformat(), name, len(posts))


async def drain_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send what is due (retries whose wait is over, posts left by a restart)."""
    await context.application.bot_data["publisher"].drain()


def schedule_all(application: Application) -> None:
    """Jobs for every active channel in the database, plus the drain job."""
    db: Database = application.bot_data["db"]
    config = application.bot_data["config"]
    job_queue = application.job_queue
    assert job_queue is not None
    with db.session() as session:
        channels = [(c.name, settings_of(c)) for c in active_channels(session)]
    for name, settings in channels:
        schedule_channel(job_queue, name, settings, misfire_grace=config.publish.misfire_grace_seconds)
    job_queue.run_repeating(drain_job, interval=config.publish.drain_interval_seconds, first=1, name=DRAIN_JOB,
                            job_kwargs={"id": DRAIN_JOB, "replace_existing": True, "coalesce": True,
                                        "max_instances": 1})


async def run_missed_slots(application: Application) -> int:
    """Run once the newest slot of each channel that passed while the bot was down (cron or every N)."""
    db: Database = application.bot_data["db"]
    config = application.bot_data["config"]
    now = utcnow()
    grace = timedelta(seconds=config.publish.misfire_grace_seconds)
    due: list[tuple[str, datetime]] = []
    with db.session() as session:
        for channel in active_channels(session):
            previous = last_slot(session, channel.id)
            since = max(x for x in (previous, channel.created_at, now - grace) if x is not None)
            settings = settings_of(channel)
            moment = slots.newest_slot(settings.schedule, since, now, settings.timezone)
            if moment is not None:
                due.append((channel.name, moment))
    for name, moment in due:
        log.info("running the missed slot %s of %s once", moment.isoformat(), name)
        await run_slot(application, name, moment)
    return len(due)
