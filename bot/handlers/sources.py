"""/sources for admins: each source's health; switch one on or off, or have it refreshed now."""

from __future__ import annotations

import html
from datetime import datetime

from telegram import Update

from bot.handlers.common import Context, UsageError, actor_of, reply, run_db
from bot.i18n import N_, Translations
from bot.languages import translator
from digests.clock import utcnow
from digests.errors import NotFoundError
from digests.formatting.times import ARCHIVE_TIMEZONE, format_time
from digests.sources.registry import SourceHealth, refresh_soon, source_health, switch_source

SHOWN = 25  # sources listed in one reply (a message holds 4,096 characters)
_ON, _OFF, _REFRESH = ("on", "enable"), ("off", "disable"), ("refresh", "fetch")
# digests.sources.registry's states, as an admin reads them
STATE_NAMES = {"ok": N_("ok"), "unchanged": N_("unchanged"), "partial": N_("partial"), "failed": N_("failed"),
               "waiting": N_("waiting"), "never fetched": N_("never fetched"), "off": N_("off"),
               "switched off": N_("switched off")}


def _when(moment: datetime | None) -> str:
    return format_time(moment, ARCHIVE_TIMEZONE, empty="—")


def health_line(health: SourceHealth, t: Translations) -> str:
    """One source in a reply: name, kind and state, then when and what, then the last error."""
    state = t.gettext(STATE_NAMES[health.state]) if health.state in STATE_NAMES else health.state
    status = f" HTTP {health.http_status}" if health.http_status else ""
    extra = ""
    if health.git_commit:
        extra += " · " + t.gettext("commit {commit}").format(commit=health.git_commit[:10])
    if health.consecutive_failures:
        extra += " · " + t.ngettext("{count} failure in a row", "{count} failures in a row",
                                    health.consecutive_failures).format(count=health.consecutive_failures)
    lines = [
        f"• <b>{html.escape(health.name)}</b> ({health.kind}) {html.escape(state)}{status}",
        "  " + t.gettext("fetched {fetched} · changed {changed} · next {next}").format(
            fetched=_when(health.last_fetch), changed=_when(health.last_change), next=_when(health.next_fetch)),
        "  " + t.ngettext("+{added} item last time, {total} in all", "+{added} items last time, {total} in all",
                          health.items_added).format(added=health.items_added, total=health.items_total) + extra,
    ]
    if health.error:
        lines.append(f"  ⚠ {html.escape(health.error[:300])}")
    return "\n".join(lines)


async def sources_command(update: Update, context: Context) -> None:
    """/sources: each source's health; /sources on|off|refresh NAME changes one."""
    args = context.args or []
    t = await translator(update, context)
    if not args:
        every = await run_db(context, source_health)
        if not every:
            await reply(update, html.escape(t.gettext(
                "No sources yet: add them under sources: in config.yaml, or import an OPML file with "
                "digestbot sources import FILE.opml.")))
            return
        heading = html.escape(t.gettext("Sources"))
        lines = [f"<b>{heading}</b> ({len(every)})",
                 *(health_line(h, t) for h in every[:SHOWN])]
        if len(every) > SHOWN:
            lines.append(html.escape(t.gettext("…and {count} more: digestbot sources lists them all").format(
                count=len(every) - SHOWN)))
        await reply(update, "\n".join(lines))
        return
    action = args[0].lower()
    if len(args) != 2 or action not in (*_ON, *_OFF, *_REFRESH):
        raise UsageError()
    name, actor, now = args[1], actor_of(update), utcnow()
    try:
        if action in _REFRESH:
            health = await run_db(context, refresh_soon, name, actor=actor, now=now)
            said = t.gettext("Source {name} will be fetched within a few seconds (when the bot keeps sources "
                             "in step).")
        else:
            health = await run_db(context, switch_source, name, on=action in _ON, actor=actor, now=now)
            said = (t.gettext("Source {name} is on again and will be fetched now.") if action in _ON
                    else t.gettext("Source {name} is switched off."))
    except NotFoundError as exc:
        raise UsageError(exc) from None
    text = html.escape(said).format(name=f"<b>{html.escape(name)}</b>")
    await reply(update, f"{text}\n{health_line(health, t)}")
