"""`digestbot deliveries`, `uncertain` and `stats`: what was sent, what waits for an admin, the counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.cli.context import Context
from bot.cli.output import print_json
from digests import views
from digests.formatting.times import format_time
from digests.sources.registry import sources_summary
from digests.states import FAILED, UNCERTAIN


def cmd_deliveries(ctx: Context) -> int:
    """The delivery records: item ids, channel, state, message_id, times, error."""
    rows = views.delivery_records(ctx.db, states=ctx.args.state, channel=ctx.args.channel, limit=ctx.args.limit)
    if ctx.args.json:
        print_json(rows)
        return 0
    zones = _timezones(ctx)
    for row in rows:
        sent = row["sent_at"] and format_time(datetime.fromisoformat(row["sent_at"]), zones.get(row["channel"]))
        print(f"{row['id']:>6} {row['channel']:<12} {row['state']:<10} items {row['item_ids']} "
              f"msg {row['message_id'] or '-'} {sent or ''} {row['error'] or ''}"
              + (f" edits {row['edits']} ({row['edit_state']}, last {row['last_edit_at'] or '-'}) "
                 f"{row['edit_error'] or ''}" if row["edit_state"] else ""))
    if not rows:
        print("no delivery records yet")
    return 0


def _timezones(ctx: Context) -> dict[str, str]:
    """channel name -> its timezone: times are shown there, as the bot shows them."""
    return {summary.name: summary.timezone for summary in views.channel_summaries(ctx.db)}


def cmd_uncertain(ctx: Context) -> int:
    """List posts whose outcome is unknown or that failed; resolve with --confirm/--resend/--drop ID."""
    from digests.publishing.review import resolve_post

    for action in ("confirm", "resend", "drop"):
        post_id = getattr(ctx.args, action)
        if post_id is not None:
            post = resolve_post(ctx.db, post_id, action=action, actor="cli")
            print(f"post {post.id}: {post.state}")
            return 0
    rows = views.delivery_records(ctx.db, states=[UNCERTAIN, FAILED])
    if ctx.args.json:
        print_json(rows)
        return 0
    if not rows:
        print("nothing uncertain or failed")
    for row in rows:
        print(f"{row['id']:>6} {row['channel']:<12} {row['state']:<10} items {row['item_ids']} {row['error'] or ''}")
    return 0


def stats_json(stats: views.DeliveryStats) -> dict[str, Any]:
    """The counts an operator looks at first, as `stats --json` prints them."""
    return {"items": stats.items, "flood_waits": stats.flood_waits, "channels": [
        {"name": ch.name, "chat_id": ch.chat_id, "paused": ch.paused, "paused_reason": ch.paused_reason,
         "sent": ch.sent, "pending": ch.waiting, "failed": ch.failed, "uncertain": ch.uncertain,
         "last_post": ch.last_sent_at.isoformat() if ch.last_sent_at else None}
        for ch in stats.channels
    ]}


def cmd_stats(ctx: Context) -> int:
    """Items, posts sent/pending/failed/uncertain, 429s, last post per channel."""
    stats = {**stats_json(views.delivery_stats(ctx.db)), "sources": sources_summary(ctx.db)}
    if ctx.args.json:
        print_json(stats)
        return 0
    print(f"items: {stats['items']}   429s received: {stats['flood_waits']}")
    sources = stats["sources"]
    print(f"sources: {sources['sources']} ({sources['failing']} failing, {sources['switched_off']} switched off), "
          f"{sources['items_added']} items added by them")
    zones = _timezones(ctx)
    for ch in stats["channels"]:
        state = f"paused ({ch['paused_reason'] or 'by an admin'})" if ch["paused"] else "active"
        last = ch["last_post"] and format_time(datetime.fromisoformat(ch["last_post"]), zones.get(ch["name"]))
        print(f"  {ch['name']:<12} {state:<10} sent {ch['sent']} pending {ch['pending']} failed {ch['failed']} "
              f"uncertain {ch['uncertain']} last post {last or '-'}")
    return 0
