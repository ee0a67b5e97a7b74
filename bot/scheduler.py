"""Channel slots as JobQueue (APScheduler) jobs, built from the schedules stored in the database."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from telegram.ext import Application, ContextTypes, JobQueue

from digests.channels import settings_of
from digests.clock import utcnow
from digests.config import ChannelConfig, parse_interval
from digests.publishing.selection import in_quiet_hours
from digests.store.channels import active_channel, active_channels
from digests.store.db import Database
from digests.store.posts import last_slot

log = logging.getLogger(__name__)
SLOT_PREFIX = "slot:"
DRAIN_JOB = "drain"


def slot_job_id(channel: str, index: int) -> str:
    return f"{SLOT_PREFIX}{channel}:{index}"


def _trigger(entry: str, settings: ChannelConfig) -> CronTrigger | None:
    if parse_interval(entry) is not None:
        return None
    return CronTrigger.from_crontab(entry, timezone=ZoneInfo(settings.timezone))


def schedule_channel(job_queue: JobQueue, name: str, settings: ChannelConfig, *, misfire_grace: int) -> list[str]:
    """(Re)create the slot jobs of one channel; explicit ids so a change replaces, never duplicates."""
    unschedule_channel(job_queue, name)
    ids = []
    for index, entry in enumerate(settings.schedule):
        job_id = slot_job_id(name, index)
        # coalesce: a slot missed several times runs once; misfire_grace_time: a slot late by
        # less than this (a busy loop, a short stall) still runs. Downtime is handled at start.
        common = {"id": job_id, "replace_existing": True, "coalesce": True, "misfire_grace_time": misfire_grace,
                  "max_instances": 1}
        seconds = parse_interval(entry)
        if seconds is not None:
            job_queue.run_repeating(run_slot_job, interval=seconds, first=seconds, name=job_id,
                                    data={"channel": name, "interval": seconds}, job_kwargs=common)
        else:
            trigger = _trigger(entry, settings)
            job_queue.run_custom(run_slot_job, job_kwargs={"trigger": trigger, **common}, name=job_id,
                                 data={"channel": name})
        ids.append(job_id)
    return ids


def unschedule_channel(job_queue: JobQueue, name: str) -> None:
    for job in job_queue.jobs():
        if job.name and job.name.startswith(f"{SLOT_PREFIX}{name}:"):
            job.schedule_removal()


def slot_time(now: datetime, interval: int | None = None) -> datetime:
    """The slot a firing belongs to: the minute (cron) or the interval step (every N)."""
    if interval:
        epoch = int(now.timestamp())
        return datetime.fromtimestamp(epoch - epoch % interval, tz=now.tzinfo)
    return now.replace(second=0, microsecond=0)


async def run_slot_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """A slot fired: plan the channel's posts and send them (quiet hours and pause respected)."""
    job = context.job
    assert job is not None and isinstance(job.data, dict)
    name = job.data["channel"]
    await run_slot(context.application, name, slot_time(utcnow(), job.data.get("interval")))


async def run_slot(application: Application, name: str, slot_at: datetime) -> None:
    """Run one slot unless the channel is gone, retired or in its quiet hours (planning checks the pause)."""
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


def missed_slot(settings: ChannelConfig, *, since: datetime, now: datetime) -> datetime | None:
    """The newest cron slot in (since, now], or None: what a restart should run once."""
    newest: datetime | None = None
    for entry in settings.schedule:
        trigger = _trigger(entry, settings)
        if trigger is None:
            continue
        moment = trigger.get_next_fire_time(None, since + timedelta(seconds=1))
        while moment is not None and moment <= now:
            if newest is None or moment > newest:
                newest = moment
            moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return newest


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
    """Run once the newest slot of each channel that passed while the bot was down."""
    db: Database = application.bot_data["db"]
    config = application.bot_data["config"]
    now = utcnow()
    grace = timedelta(seconds=config.publish.misfire_grace_seconds)
    due: list[tuple[str, datetime]] = []
    with db.session() as session:
        for channel in active_channels(session):
            previous = last_slot(session, channel.id)
            since = max(x for x in (previous, channel.created_at, now - grace) if x is not None)
            moment = missed_slot(settings_of(channel), since=since, now=now)
            if moment is not None:
                due.append((channel.name, moment.replace(second=0, microsecond=0)))
    for name, moment in due:
        log.info("running the missed slot %s of %s once", moment.isoformat(), name)
        await run_slot(application, name, moment)
    return len(due)
