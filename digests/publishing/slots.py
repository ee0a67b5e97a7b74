"""When a channel's schedule fires next: pure, from its settings, the last slot planned and now."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from digests.config import ChannelConfig, parse_interval


def next_slot(settings: ChannelConfig, now: datetime, *, last_slot: datetime | None = None) -> datetime:
    """The earliest next firing of the channel's schedule entries after ``now``.

    A cron entry fires at its next matching minute in the channel's timezone; an ``every N``
    entry N after the channel's last slot, or now when that is past (the bot runs it N after
    start, a cron job whenever cron says: the schedule only says how often).
    """
    moments = []
    for entry in settings.schedule:
        seconds = parse_interval(entry)
        if seconds is not None:
            moments.append(max(now, last_slot + timedelta(seconds=seconds)) if last_slot else now)
            continue
        fire = CronTrigger.from_crontab(entry, timezone=ZoneInfo(settings.timezone)).get_next_fire_time(None, now)
        if fire is not None:
            moments.append(fire)
    return min(moments) if moments else now
