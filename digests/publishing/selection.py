"""Which items are due for a channel now: pure functions over candidates and settings."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from digests.config import ChannelConfig, parse_quiet_hours
from digests.formatting.commentary import needs_commentary_hold


class SelectableItem(Protocol):
    id: int
    format: str
    category: str
    tags: list[str]
    source: str
    published_at: datetime | None
    created_at: datetime
    commentary: str
    removed: bool


_Item = TypeVar("_Item", bound=SelectableItem)


def in_quiet_hours(now: datetime, settings: ChannelConfig) -> bool:
    """True when now falls in the channel's quiet hours (in the channel's timezone)."""
    if not settings.quiet_hours:
        return False
    start, end = parse_quiet_hours(settings.quiet_hours)
    local = now.astimezone(ZoneInfo(settings.timezone)).time().replace(tzinfo=None)
    return _between(local, start, end)


def _between(moment: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # the span crosses midnight


def _local_date(moment: datetime | None, tz: ZoneInfo) -> date | None:
    return moment.astimezone(tz).date() if moment is not None else None


def is_eligible(item: SelectableItem, settings: ChannelConfig, *, has_commentary: bool,
                backlog_from: datetime | None) -> bool:
    """Whether the channel's rules admit the item at all (ignoring what was already sent)."""
    if item.removed:
        return False
    rules = settings.select
    if rules.formats and item.format not in rules.formats:
        return False
    if rules.categories and item.category not in rules.categories:
        return False
    if rules.sources and item.source not in rules.sources:
        return False
    if rules.tags and not set(rules.tags) & set(item.tags or ()):
        return False
    tz = ZoneInfo(settings.timezone)
    day = _local_date(item.published_at, tz)
    if rules.since is not None and (day is None or day < rules.since):
        return False
    if rules.until is not None and (day is None or day > rules.until):
        return False
    if backlog_from is not None and item.created_at < backlog_from:
        return False
    return not (settings.commentary_policy == "hold" and not has_commentary)


def order_key(item: SelectableItem, settings: ChannelConfig) -> tuple[object, ...]:
    """Sort key of the channel's order: oldest first, newest first, or a seeded shuffle."""
    order = settings.select.order
    when = (item.published_at or item.created_at).timestamp()
    if order == "newest":
        return (-when, -item.id)
    if order == "shuffle":
        digest = hashlib.blake2b(f"{settings.select.seed}:{item.id}".encode(), digest_size=8).digest()
        return (digest, item.id)
    return (when, item.id)


def next_due_items(
    candidates: Iterable[_Item],
    settings: ChannelConfig,
    *,
    delivered: set[int],
    with_commentary: set[int],
    backlog_from: datetime | None,
    limit: int,
) -> list[_Item]:
    """The next ``limit`` items for the channel, in its order; never one already delivered there."""
    eligible = [
        item for item in candidates
        if item.id not in delivered
        and is_eligible(item, settings, has_commentary=item.id in with_commentary or not needs_commentary_hold(
                            item, "hold", label=settings.commentary_label), backlog_from=backlog_from)
    ]
    eligible.sort(key=lambda item: order_key(item, settings))
    return eligible[:limit]


def group_for_posts(items: Sequence[_Item], settings: ChannelConfig) -> list[list[_Item]]:
    """Single mode: one post per item. Digest mode: the slot's items in one post (split later if long)."""
    if not items:
        return []
    if settings.mode == "digest":
        return [list(items)]
    return [[item] for item in items]
