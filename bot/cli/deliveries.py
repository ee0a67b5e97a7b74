"""`digestbot deliveries`, `uncertain` and `stats`: what was sent, what waits for an admin, the counts."""

from __future__ import annotations

from typing import Any

from bot.cli.context import Context
from bot.cli.output import print_json
from digests.store.channels import all_channels, get_channel
from digests.store.models import FAILED, PENDING, RETRY, SENDING, SENT, UNCERTAIN, Post


def cmd_deliveries(ctx: Context) -> int:
    """The delivery records: item ids, channel, state, message_id, times, error."""
    from digests.publishing.delivery import list_posts, post_json

    with ctx.db.session() as session:
        names = {c.id: c.name for c in all_channels(session)}
        channel_id = get_channel(session, ctx.args.channel).id if ctx.args.channel else None
        posts = list_posts(session, states=ctx.args.state or None, channel_id=channel_id, limit=ctx.args.limit)
        rows = [post_json(p, names.get(p.channel_id, "?")) for p in posts]
    if ctx.args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(f"{row['id']:>6} {row['channel']:<12} {row['state']:<10} items {row['item_ids']} "
              f"msg {row['message_id'] or '-'} {row['sent_at'] or ''} {row['error'] or ''}")
    if not rows:
        print("no delivery records yet")
    return 0


def cmd_uncertain(ctx: Context) -> int:
    """List posts whose outcome is unknown or that failed; resolve with --confirm/--resend/--drop ID."""
    from digests.publishing.delivery import list_posts, post_json, resolve_post

    for action in ("confirm", "resend", "drop"):
        post_id = getattr(ctx.args, action)
        if post_id is not None:
            post = resolve_post(ctx.db, post_id, action=action, actor="cli")
            print(f"post {post.id}: {post.state}")
            return 0
    with ctx.db.session() as session:
        names = {c.id: c.name for c in all_channels(session)}
        rows = [post_json(p, names.get(p.channel_id, "?")) for p in list_posts(session, states=[UNCERTAIN, FAILED])]
    if ctx.args.json:
        print_json(rows)
        return 0
    if not rows:
        print("nothing uncertain or failed")
    for row in rows:
        print(f"{row['id']:>6} {row['channel']:<12} {row['state']:<10} items {row['item_ids']} {row['error'] or ''}")
    return 0


def collect_stats(ctx_db: Any) -> dict[str, Any]:
    """Counts an operator or admin looks at first."""
    from sqlalchemy import func, select

    from digests.publishing.delivery import queue_counts, read_counter
    from digests.store.items import count_items

    with ctx_db.session() as session:
        counts = queue_counts(session)
        channels = []
        for channel in all_channels(session):
            last = session.scalar(select(func.max(Post.sent_at)).where(Post.channel_id == channel.id,
                                                                       Post.state == SENT))
            channels.append({
                "name": channel.name, "chat_id": channel.chat_id, "paused": channel.paused,
                "paused_reason": channel.paused_reason,
                "sent": counts.get((channel.id, SENT), 0),
                "pending": sum(counts.get((channel.id, s), 0) for s in (PENDING, RETRY, SENDING)),
                "failed": counts.get((channel.id, FAILED), 0),
                "uncertain": counts.get((channel.id, UNCERTAIN), 0),
                "last_post": last.isoformat() if last else None,
            })
        return {"items": count_items(session), "flood_waits": read_counter(session, "flood_waits"),
                "channels": channels}


def cmd_stats(ctx: Context) -> int:
    """Items, posts sent/pending/failed/uncertain, 429s, last post per channel."""
    stats = collect_stats(ctx.db)
    if ctx.args.json:
        print_json(stats)
        return 0
    print(f"items: {stats['items']}   429s received: {stats['flood_waits']}")
    for ch in stats["channels"]:
        state = f"paused ({ch['paused_reason'] or 'by an admin'})" if ch["paused"] else "active"
        print(f"  {ch['name']:<12} {state:<10} sent {ch['sent']} pending {ch['pending']} failed {ch['failed']} "
              f"uncertain {ch['uncertain']} last post {ch['last_post'] or '-'}")
    return 0
