"""/sources for admins: each source's health; switch one on or off, or have it refreshed now."""

from __future__ import annotations

import html
from datetime import datetime

from telegram import Update

from bot.handlers.common import Context, UsageError, actor_of, reply, run_db
from digests.clock import utcnow
from digests.errors import NotFoundError
from digests.formatting.times import ARCHIVE_TIMEZONE, format_time
from digests.sources.registry import SourceHealth, refresh_soon, source_health, switch_source

SHOWN = 25  # sources listed in one reply (a message holds 4,096 characters)
_ON, _OFF, _REFRESH = ("on", "enable"), ("off", "disable"), ("refresh", "fetch")


def _when(moment: datetime | None) -> str:
    return format_time(moment, ARCHIVE_TIMEZONE, empty="—")


def health_line(health: SourceHealth) -> str:
    """One source in a reply: name, kind and state, then when and what, then the last error."""
    status = f" HTTP {health.http_status}" if health.http_status else ""
    commit = f" · commit {health.git_commit[:10]}" if health.git_commit else ""
    failures = f" · {health.consecutive_failures} failure(s) in a row" if health.consecutive_failures else ""
    lines = [
        f"• <b>{html.escape(health.name)}</b> ({health.kind}) {html.escape(health.state)}{status}",
        f"  fetched {_when(health.last_fetch)} · changed {_when(health.last_change)} · next {_when(health.next_fetch)}",
        f"  +{health.items_added} item(s) last time, {health.items_total} in all{commit}{failures}",
    ]
    if health.error:
        lines.append(f"  ⚠ {html.escape(health.error[:300])}")
    return "\n".join(lines)


async def sources_command(update: Update, context: Context) -> None:
    """/sources: each source's health; /sources on|off|refresh NAME changes one."""
    args = context.args or []
    if not args:
        every = await run_db(context, source_health)
        if not every:
            await reply(update, "No sources yet: add them under sources: in config.yaml, or import an OPML "
                                "file with digestbot sources import FILE.opml.")
            return
        lines = [f"<b>Sources</b> ({len(every)})", *(health_line(h) for h in every[:SHOWN])]
        if len(every) > SHOWN:
            lines.append(f"…and {len(every) - SHOWN} more: digestbot sources lists them all")
        await reply(update, "\n".join(lines))
        return
    action = args[0].lower()
    if len(args) != 2 or action not in (*_ON, *_OFF, *_REFRESH):
        raise UsageError()
    name, actor, now = args[1], actor_of(update), utcnow()
    try:
        if action in _REFRESH:
            health = await run_db(context, refresh_soon, name, actor=actor, now=now)
            text = "will be fetched within a few seconds (when the bot keeps sources in step)"
        else:
            health = await run_db(context, switch_source, name, on=action in _ON, actor=actor, now=now)
            text = "is on again and will be fetched now" if action in _ON else "is switched off"
    except NotFoundError as exc:
        raise UsageError(str(exc)) from None
    await reply(update, f"Source <b>{html.escape(name)}</b> {text}.\n{health_line(health)}")
