"""When a channel's slots are: pure, from its schedule entries, its timezone and the moment asked about.

A cron entry's slots are the moments cron says. An ``every N`` entry's slots lie on a fixed grid
that does not depend on when the bot started, so a restart neither resets the clock nor loses a slot:

- N divides a day (every 30m, 2h, 6h): local midnight + k·N in the channel's timezone, as
  wall-clock times (every 6h is 00:00, 06:00, 12:00 and 18:00 local, DST or not).
- N is whole days (every 2d): local midnight of every N-th day counted from 1970-01-01.
- anything else (every 7h, 25h): the Unix epoch + k·N, ignoring the timezone.

A wall-clock slot that a DST jump skips happens at the jump (the first moment the clock reads
later than it); one that a DST fall-back repeats happens both times, since both are N apart from
their neighbours in elapsed time. No moment is a slot twice.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from digests.config import parse_interval

DAY = 86400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_SECOND = timedelta(seconds=1)
_LOOKBACK_LIMIT = timedelta(days=366 * 30)  # a cron entry with no slot in 30 years has none


@dataclass(frozen=True, slots=True)
class _DayGrid:
    """Slots at given seconds after local midnight, on every ``every_days``-th local day."""

    every_days: int
    seconds_of_day: tuple[int, ...]

    def qualifies(self, day: date) -> bool:
        return (day.toordinal() - _EPOCH_DAY) % self.every_days == 0


def _as_zone(tz: ZoneInfo | str) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


@lru_cache(maxsize=256)
def _cron(entry: str, tz: ZoneInfo) -> CronTrigger:
    return CronTrigger.from_crontab(entry, timezone=tz)


def _day_grid(seconds: int) -> _DayGrid | None:
    if DAY % seconds == 0:
        return _DayGrid(1, tuple(range(0, DAY, seconds)))
    if seconds % DAY == 0:
        return _DayGrid(seconds // DAY, (0,))
    return None


def _jump_of(before: datetime, after: datetime, tz: ZoneInfo) -> datetime:
    """The moment between two instants where the timezone's offset changes (to the second)."""
    low, high = before, after  # offset(low) differs from offset(high)
    target = high.astimezone(tz).utcoffset()
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            break
        if middle.astimezone(tz).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high


def _wall_instants(wall: datetime, tz: ZoneInfo) -> set[datetime]:
    """The UTC instants at which the local clock reads ``wall`` (or passes it, in a DST gap)."""
    instants = {wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)}
    real = {moment for moment in instants if moment.astimezone(tz).replace(tzinfo=None) == wall}
    if real:
        return real
    earlier, later = sorted(instants)  # a skipped wall time: both readings straddle the jump
    return {_jump_of(earlier, later, tz)}


@lru_cache(maxsize=1024)
def _slots_of_day(grid: _DayGrid, tz: ZoneInfo, day: date) -> tuple[datetime, ...]:
    if not grid.qualifies(day):
        return ()
    midnight = datetime.combine(day, time())
    moments: set[datetime] = set()
    for seconds in grid.seconds_of_day:
        moments |= _wall_instants(midnight + timedelta(seconds=seconds), tz)
    return tuple(sorted(moments))


@lru_cache(maxsize=256)
def _around(grid: _DayGrid, tz: ZoneInfo, day: date) -> tuple[datetime, ...]:
    """The slots of the local days next to ``day``: enough to order slots across a midnight jump."""
    moments: list[datetime] = []
    for offset in (-1, 0, 1):
        moments.extend(_slots_of_day(grid, tz, day + timedelta(days=offset)))
    return tuple(sorted(moments))


def _grid_next(grid: _DayGrid, tz: ZoneInfo, after: datetime) -> datetime:
    day = after.astimezone(tz).date()
    while True:
        moments = _around(grid, tz, day)
        index = bisect_right(moments, after)
        if index < len(moments):
            return moments[index]
        day += timedelta(days=3)  # the next three days, after the three just looked at


def _grid_newest(grid: _DayGrid, tz: ZoneInfo, at: datetime) -> datetime:
    day = at.astimezone(tz).date()
    while True:
        moments = _around(grid, tz, day)
        index = bisect_right(moments, at)
        if index:
            return moments[index - 1]
        day -= timedelta(days=3)


def _epoch_next(seconds: int, after: datetime) -> datetime:
    elapsed = (after - _EPOCH) // timedelta(seconds=1)
    return _EPOCH + timedelta(seconds=(elapsed // seconds + 1) * seconds)


def _epoch_newest(seconds: int, at: datetime) -> datetime:
    elapsed = (at - _EPOCH) // timedelta(seconds=1)
    return _EPOCH + timedelta(seconds=(elapsed // seconds) * seconds)


def next_slot(entry: str, after: datetime, tz: ZoneInfo | str) -> datetime | None:
    """The entry's first slot strictly after ``after`` (aware UTC), or None when it has no more."""
    zone = _as_zone(tz)
    seconds = parse_interval(entry)
    if seconds is None:
        fire = _cron(entry, zone).get_next_fire_time(None, after + timedelta(microseconds=1))
        return fire.astimezone(UTC) if fire is not None else None
    grid = _day_grid(seconds)
    return _grid_next(grid, zone, after) if grid is not None else _epoch_next(seconds, after)


def firing_slot(entry: str, now: datetime, tz: ZoneInfo | str) -> datetime | None:
    """The slot a firing of the entry at ``now`` belongs to: its newest slot at or before now."""
    zone = _as_zone(tz)
    seconds = parse_interval(entry)
    if seconds is not None:
        grid = _day_grid(seconds)
        return _grid_newest(grid, zone, now) if grid is not None else _epoch_newest(seconds, now)
    # cron runs only forwards: look back over a widening window, then step forwards to now
    window = timedelta(minutes=1)
    while window <= _LOOKBACK_LIMIT:
        newest = next_slot(entry, now - window, zone)
        if newest is not None and newest <= now:
            while (later := next_slot(entry, newest, zone)) is not None and later <= now:
                newest = later
            return newest
        window *= 2
    return None


def newest_slot(entries: Iterable[str], since: datetime, now: datetime, tz: ZoneInfo | str) -> datetime | None:
    """The newest slot of any entry in (since, now], or None: what a restart owes, to be run once."""
    owed = [moment for entry in entries if (moment := firing_slot(entry, now, tz)) is not None and moment > since]
    return max(owed, default=None)


def upcoming_slot(entries: Iterable[str], now: datetime, tz: ZoneInfo | str) -> datetime | None:
    """The earliest slot of any entry after ``now``: when the channel posts next."""
    upcoming = [moment for entry in entries if (moment := next_slot(entry, now, tz)) is not None]
    return min(upcoming, default=None)
