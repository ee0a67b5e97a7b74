"""Slot arithmetic: the slot a firing belongs to, and the one slot a restart owes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.scheduler import missed_slot, slot_time
from digests.config import ChannelConfig


def settings(schedule: list[str], tz: str = "Asia/Shanghai") -> ChannelConfig:
    return ChannelConfig.model_validate({"name": "main", "chat_id": "@main_channel", "schedule": schedule,
                                         "timezone": tz})


def test_a_restart_runs_the_newest_missed_slot_once() -> None:
    # 09:00 and 18:00 in Shanghai are 01:00 and 10:00 UTC
    daily = settings(["0 9 * * *", "0 18 * * *"])
    down_since = datetime(2024, 3, 1, 0, 30, tzinfo=UTC)
    back = datetime(2024, 3, 3, 2, 0, tzinfo=UTC)  # five slots passed while down
    assert missed_slot(daily, since=down_since, now=back) == datetime(2024, 3, 3, 1, 0, tzinfo=UTC)
    # nothing passed: nothing owed
    assert missed_slot(daily, since=back, now=back + timedelta(minutes=30)) is None
    # interval schedules are not owed anything: they simply resume
    assert missed_slot(settings(["every 2h"]), since=down_since, now=back) is None


def test_slot_time_is_stable_within_a_firing() -> None:
    moment = datetime(2024, 3, 1, 9, 0, 41, 5000, tzinfo=UTC)
    assert slot_time(moment) == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert slot_time(moment, 7200) == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
