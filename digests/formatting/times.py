"""Moments as people read them, the same in the CLI and the bot: in the channel's timezone, or the machine's."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

# The archive is linux.cn's: an item's day is the day its readers in Shanghai saw it.
ARCHIVE_TIMEZONE = "Asia/Shanghai"
NEVER = "—"


def format_time(moment: datetime | None, timezone: str | None = None, *, empty: str = NEVER) -> str:
    """'2024-03-01 09:00 CST': the moment in ``timezone`` (an IANA name), or the local one when None."""
    if moment is None:
        return empty
    local = moment.astimezone(ZoneInfo(timezone)) if timezone else moment.astimezone()
    return local.strftime("%Y-%m-%d %H:%M %Z")


def format_day(moment: datetime | None, timezone: str = ARCHIVE_TIMEZONE, *, empty: str = "----------") -> str:
    """'2024-03-01': the day of the moment in ``timezone`` (by default the archive's)."""
    if moment is None:
        return empty
    return moment.astimezone(ZoneInfo(timezone)).date().isoformat()
