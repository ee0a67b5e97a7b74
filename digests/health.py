"""Is the bot healthy? A pure decider over facts the store reads; /healthz and `digestbot health` share it.

Healthy means: the database answers at the schema this code expects, a scheduler runs (a
heartbeat no older than three beats), and no channel is stuck. A channel is stuck when

* it was paused by an error (the publisher paused it: the bot was removed, lost its rights,
  the chat is gone) — a pause by an admin is a decision, not a fault; or
* one of its posts has waited to be sent for longer than ``stuck_after`` since it was planned
  (retries and flood waits included), and the channel has had no post sent in that time: a
  queue that moves, however long, is not stuck. A post held in sending counts from when its
  lease ran out (until then its request may still be in flight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    name: str
    paused: bool
    paused_by_error: bool
    paused_reason: str | None
    waiting_since: datetime | None  # when the longest-waiting post of this channel was planned
    first_waiting: int | None  # the id of the channel's next post (posts go out in order)
    first_error: str | None  # that post's last error (a retry's reason), if any
    last_sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class HealthFacts:
    database_error: str | None = None  # None: the database answered
    revision: str | None = None
    head_revision: str | None = None
    heartbeats: dict[str, datetime] = field(default_factory=dict)  # worker -> its last beat
    channels: list[ChannelFacts] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HealthVerdict:
    ok: bool
    reasons: list[str]
    checks: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unhealthy", "reasons": self.reasons, "checks": self.checks}

    def summary(self) -> str:
        return "ok" if self.ok else "unhealthy: " + "; ".join(self.reasons)


def _ago(now: datetime, moment: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min"


def decide(facts: HealthFacts, now: datetime, *, stuck_after: timedelta, heartbeat_every: timedelta,
           workers: str | None = None, require_scheduler: bool = True) -> HealthVerdict:
    """The verdict: ok, or every reason it is not.

    ``workers`` narrows the heartbeats that count: one worker's name (``host:pid``), or a host
    name and a colon for every worker on that machine; None counts every heartbeat.
    """
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    if facts.database_error is not None:
        reasons.append(f"database: {facts.database_error}")
        checks["database"] = "error"
        return HealthVerdict(False, reasons, checks)
    if facts.revision != facts.head_revision:
        reasons.append(f"database: schema at revision {facts.revision or '(empty)'}, this digestbot expects "
                       f"{facts.head_revision} (digestbot db upgrade)")
        checks["database"] = "behind"
    else:
        checks["database"] = "ok"

    if require_scheduler:
        beats = {w: at for w, at in facts.heartbeats.items()
                 if workers is None or w == workers or (workers.endswith(":") and w.startswith(workers))}
        newest = max(beats.values(), default=None)
        limit = heartbeat_every * 3
        if newest is None:
            reasons.append("scheduler: no heartbeat from a running `digestbot run`"
                           + (f" ({workers.rstrip(':')})" if workers else ""))
            checks["scheduler"] = "missing"
        elif now - newest > limit:
            reasons.append(f"scheduler: the last heartbeat is {_ago(now, newest)} old (one is due every "
                           f"{heartbeat_every.total_seconds():g} s)")
            checks["scheduler"] = "stale"
        else:
            checks["scheduler"] = "ok"

    stuck: dict[str, str] = {}
    for channel in facts.channels:
        if channel.paused:
            if channel.paused_by_error:
                stuck[channel.name] = f"paused by an error: {channel.paused_reason or 'no reason recorded'}"
            continue
        since = channel.waiting_since
        if since is None or now - since <= stuck_after:
            continue
        if channel.last_sent_at is not None and now - channel.last_sent_at <= stuck_after:
            continue
        stuck[channel.name] = (f"post {channel.first_waiting} waiting for {_ago(now, since)} and nothing sent "
                               f"for {_ago(now, channel.last_sent_at) if channel.last_sent_at else 'ever'}"
                               + (f" (last error: {channel.first_error})" if channel.first_error else ""))
    checks["channels"] = {c.name: stuck.get(c.name, "paused" if c.paused else "ok") for c in facts.channels}
    reasons.extend(f"channel {name}: {why}" for name, why in stuck.items())
    return HealthVerdict(not reasons, reasons, checks)
