"""The slot jobs' triggers: `every N` fires on its grid, whenever the bot started; cron as cron says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.scheduler import GridTrigger, slot_trigger
from digests.config import ChannelConfig

SHANGHAI = ZoneInfo("Asia/Shanghai")


def settings(schedule: list[str], tz: str = "Asia/Shanghai") -> ChannelConfig:
    return ChannelConfig.model_validate({"name": "main", "chat_id": "@main_channel", "schedule": schedule,
                                         "timezone": tz})


def test_a_restarted_interval_job_fires_at_the_next_grid_point_not_n_after_start() -> None:
    trigger = slot_trigger("every 1m", settings(["every 1m"]))
    assert isinstance(trigger, GridTrigger)
    for started in (datetime(2024, 5, 11, 10, 0, 5, tzinfo=UTC), datetime(2024, 5, 11, 10, 0, 55, tzinfo=UTC)):
        assert trigger.get_next_fire_time(None, started) == datetime(2024, 5, 11, 10, 1, tzinfo=UTC)
    # started on a grid point: that point fires
    on_point = datetime(2024, 5, 11, 10, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, on_point) == on_point


def test_an_interval_job_steps_along_its_grid_in_the_channel_timezone() -> None:
    trigger = GridTrigger("every 6h", ZoneInfo("America/New_York"))
    fired, moments = None, []
    now = datetime(2024, 3, 9, 13, 30, tzinfo=UTC)  # 08:30 EST, the day before clocks go forward
    for _ in range(6):
        fired = trigger.get_next_fire_time(fired, now)
        assert fired is not None
        moments.append(f"{fired.astimezone(ZoneInfo('America/New_York')):%d %H:%M}")
    assert moments == ["09 12:00", "09 18:00", "10 00:00", "10 06:00", "10 12:00", "10 18:00"]


def test_cron_entries_keep_their_cron_trigger() -> None:
    trigger = slot_trigger("0 18 * * *", settings(["0 18 * * *"]))
    assert isinstance(trigger, CronTrigger) and str(trigger.timezone) == "Asia/Shanghai"
    now = datetime(2024, 5, 11, 1, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == datetime(2024, 5, 11, 18, 0, tzinfo=SHANGHAI)
    assert trigger.get_next_fire_time(None, now) - now == timedelta(hours=9)
