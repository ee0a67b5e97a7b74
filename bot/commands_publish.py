"""CLI commands around publishing: preview, publish, run, deliveries, uncertain, stats, demo."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli import print_json
from digests.channels import all_channels, get_channel, settings_of, sync_channels
from digests.store.models import FAILED, PENDING, RETRY, SENDING, SENT, UNCERTAIN, Post

if TYPE_CHECKING:
    from bot.cli import Context

log = logging.getLogger(__name__)
SAMPLE_ARCHIVE = Path(__file__).resolve().parent.parent / "digests" / "sample_archive"


def _message(html: str, photo: str | None, item_ids: list[int]) -> Any:
    from digests.formatting.blurb import Message
    from digests.formatting.telegram_html import visible_length

    return Message(html, photo, list(item_ids), visible_length(html))


def _echo_post(channel: str, post: Post) -> None:
    from digests.formatting.preview import render_terminal

    label = f"[dry-run → {channel}] post {post.id}"
    if post.digest_number:
        label += f" · digest #{post.digest_number}"
    print(f"\n\033[2m{label} · items {post.item_ids}\033[0m")
    print(render_terminal(_message(post.html, post.photo, post.item_ids)))


def _channel_names(ctx: Context, only: str | None) -> list[str]:
    with ctx.db.session() as session:
        sync_channels(session, ctx.config)
        names = [c.name for c in all_channels(session)]
        if only is not None:
            get_channel(session, only)
            return [only]
    return names


def cmd_preview(ctx: Context) -> int:
    """Show the next posts exactly as they would be sent (terminal, --json, or --html FILE)."""
    from digests.formatting.preview import render_preview_page, render_terminal
    from digests.formatting.render import make_renderer
    from digests.publishing.due import due_items
    from digests.queries import item_views

    render = make_renderer()
    rows: list[dict[str, Any]] = []
    for name in _channel_names(ctx, ctx.args.channel):
        with ctx.db.session() as session:
            channel = get_channel(session, name)
            settings = settings_of(channel)
            items = due_items(session, channel, limit=ctx.args.limit or settings.per_slot)
            views = item_views(session, items)
            number = channel.digest_counter + 1 if settings.mode == "digest" else None
        groups = [views] if settings.mode == "digest" else [[v] for v in views]
        for group in groups:
            if not group:
                continue
            for post in render(group, settings, number):
                message = _message(post.html, post.photo, post.item_ids)
                rows.append({"channel": name, "item_ids": post.item_ids, "html": post.html, "photo": post.photo,
                             "length": message.length, "message": message})
    if ctx.args.html:
        messages = [r["message"] for r in rows]
        Path(ctx.args.html).write_text(render_preview_page(messages, "hardcore-digest preview"), encoding="utf-8")
        print(f"wrote {len(rows)} post(s) to {ctx.args.html}")
    if ctx.args.json:
        print_json([{k: v for k, v in row.items() if k != "message"} for row in rows])
    elif not ctx.args.html:
        if not rows:
            print("nothing is due: every stored item was already posted, or no channel is configured")
        for row in rows:
            print(f"\n\033[2m── {row['channel']} · items {row['item_ids']}\033[0m")
            print(render_terminal(row["message"]))
    return 0


def _telegram_bot(ctx: Context) -> Any:
    from telegram.ext import ExtBot

    timeout = ctx.config.telegram.request_timeout
    from telegram.request import HTTPXRequest

    request = HTTPXRequest(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
                           connection_pool_size=ctx.config.publish.concurrency + 2)
    return ExtBot(ctx.config.token, base_url=ctx.config.telegram.base_url, request=request)


async def _publish_once(ctx: Context, names: list[str], dry_run: bool) -> Any:
    from bot.publisher import Publisher

    if dry_run:
        publisher = Publisher(ctx.db, ctx.config, None, dry_run=True, echo=_echo_post)
        for name in names:
            await publisher.run_slot(name)
        return publisher.stats
    bot = _telegram_bot(ctx)

    async def notify(text: str) -> None:
        for admin in ctx.config.telegram.admins:
            try:
                await bot.send_message(admin, text)
            except Exception as exc:
                log.warning("could not tell admin %s: %s", admin, exc)
        print(f"admin notice: {text}", file=sys.stderr)

    async with bot:
        publisher = Publisher(ctx.db, ctx.config, bot, notify=notify)
        from digests.store.posts import expire_leases

        expire_leases(ctx.db)
        for name in names:
            await publisher.run_slot(name)
        # a post waiting out flood control is kept and sent before we exit
        while await asyncio.to_thread(_waiting, ctx, names):
            await asyncio.sleep(1)
            await publisher.drain()
        return publisher.stats


def _waiting(ctx: Context, names: list[str]) -> bool:
    """Posts of these channels still in retry (flood control, transient errors), or edits waiting so."""
    from sqlalchemy import select

    from digests.store.edits import edits_waiting

    with ctx.db.session() as session:
        ids = [get_channel(session, n).id for n in names]
        return (session.scalar(select(Post.id).where(Post.channel_id.in_(ids), Post.state == RETRY).limit(1))
                is not None or edits_waiting(session, ids))


def cmd_publish(ctx: Context) -> int:
    """Run one slot of each channel (or --channel NAME) now and exit; for cron users."""
    if not ctx.args.once:
        print("digestbot publish: add --once (one slot now); `digestbot run` keeps the schedule", file=sys.stderr)
        return 2
    dry_run = ctx.args.dry_run or not ctx.config.token
    if dry_run and not ctx.args.dry_run:
        print("no telegram.token / DIGESTBOT_TOKEN: dry run, posts are shown here and recorded as dry-run",
              file=sys.stderr)
    names = _channel_names(ctx, ctx.args.channel)
    if not names:
        print("no channels configured: add one under channels: in config.yaml", file=sys.stderr)
        return 2
    stats = asyncio.run(_publish_once(ctx, names, dry_run))
    if not dry_run:
        print(f"sent {stats.sent}, retried {stats.retried}, failed {stats.failed}, uncertain {stats.uncertain}, "
              f"flood waits {stats.flood_waits}, edited {stats.edited}, deleted {stats.deleted}")
    return 1 if stats.failed or stats.uncertain or stats.edits_failed else 0


def cmd_run(ctx: Context) -> int:
    """Run the bot: scheduler plus command polling (Ctrl-C stops it)."""
    from bot.app import build_application

    dry_run = ctx.args.dry_run or not ctx.config.token
    if dry_run:
        print("dry run: posts are printed here and recorded as dry-run; no Telegram", file=sys.stderr)
    application = build_application(ctx.config, ctx.db, dry_run=dry_run, echo=_echo_post,
                                     poll=ctx.config.telegram.poll_commands)
    if application.updater is None:
        asyncio.run(_run_without_polling(application))
    else:
        application.run_polling(drop_pending_updates=False, close_loop=False)
    return 0


async def _run_without_polling(application: Any) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with application:
        if application.post_init is not None:  # run_polling would call it; without polling we do
            await application.post_init(application)
        await application.start()
        await stop.wait()
        await application.stop()


def cmd_deliveries(ctx: Context) -> int:
    """The delivery records: item ids, channel, state, message_id, times, error."""
    from digests.store.posts import list_posts, post_json

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
              f"msg {row['message_id'] or '-'} {row['sent_at'] or ''} {row['error'] or ''}"
              + (f" edits {row['edits']} ({row['edit_state']}, last {row['last_edit_at'] or '-'}) "
                 f"{row['edit_error'] or ''}" if row["edit_state"] else ""))
    if not rows:
        print("no delivery records yet")
    return 0


def cmd_uncertain(ctx: Context) -> int:
    """List posts whose outcome is unknown or that failed; resolve with --confirm/--resend/--drop ID."""
    from digests.publishing.review import resolve_post
    from digests.store.posts import list_posts, post_json

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

    from digests.queries import count_items
    from digests.store.posts import queue_counts, read_counter

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


def cmd_demo(ctx: Context) -> int:
    """The whole pipeline on the shipped sample archive, in dry run: ingest, preview, publish."""
    from bot.cli import _print_ingest_report
    from digests.config import config_from_mapping
    from digests.ingest import ingest

    workdir = Path(ctx.args.workdir) if ctx.args.workdir else Path(tempfile.mkdtemp(prefix="digestbot-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / "archive"
    if archive.exists():
        shutil.rmtree(archive)
    for stale in workdir.glob("demo.db*"):  # every demo starts from an empty database
        stale.unlink()
    shutil.copytree(SAMPLE_ARCHIVE, archive)
    config = config_from_mapping({
        "database": {"url": f"sqlite:///{workdir / 'demo.db'}"},
        "archive": {"paths": [str(archive)]},
        "channels": [
            {"name": "column", "chat_id": "@hardcore_demo", "schedule": ["0 9,18 * * *"], "mode": "digest",
             "per_slot": 3, "select": {"categories": ["硬核观察"]}},
            {"name": "single", "chat_id": "-1001234567890", "schedule": ["every 2h"], "per_slot": 3,
             "select": {"order": "newest", "formats": ["feed", "rssjson", "newsletter", "jekyll"]}},
        ],
    }, source="demo")
    ctx.config = config
    print(f"hardcore-digest demo · working directory {workdir}\n")
    print(f"1. ingest the sample archive ({len(list(archive.rglob('*')))} files, one per format)")
    report = ingest(ctx.db, [archive])
    _print_ingest_report(report)
    report = ingest(ctx.db, [archive])
    print(f"   again: {report.documents_unchanged} unchanged, {report.items_new} new items (nothing doubled)\n")
    print("2. publish one slot of each channel, dry run (no token needed)")
    names = _channel_names(ctx, None)
    asyncio.run(_publish_once(ctx, names, True))
    print("\n3. what was recorded (digestbot deliveries --json):")
    from digests.store.posts import list_posts

    with ctx.db.session() as session:
        for post in list_posts(session):
            print(f"   post {post.id}: {post.state}, items {post.item_ids}")
    from digests.store import search

    print("\n4. search the archive, as subscribers do with /search:")
    for query in ("开源", "数据库", "RISC-V"):
        with ctx.db.session() as session:
            titles = [item.title for item in search.search_items(session, query, limit=3).results]
        print(f"   {query}: " + ("；".join(titles) if titles else "nothing found"))
    print(f"\nThe demo database is {workdir / 'demo.db'}; to look around:\n"
          f"   DIGESTBOT_DATABASE_URL=sqlite:///{workdir.resolve() / 'demo.db'} .venv/bin/digestbot search 开源")
    return 0


def register(add: Callable[..., Any]) -> None:
    p = add("preview", cmd_preview)
    p.add_argument("--channel", metavar="NAME")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", metavar="FILE", help="write a page that renders the posts like Telegram")

    p = add("publish", cmd_publish)
    p.add_argument("--once", action="store_true", help="run one slot now and exit")
    p.add_argument("--channel", metavar="NAME")
    p.add_argument("--dry-run", action="store_true")

    p = add("run", cmd_run)
    p.add_argument("--dry-run", action="store_true")

    p = add("deliveries", cmd_deliveries)
    p.add_argument("--json", action="store_true")
    p.add_argument("--channel", metavar="NAME")
    p.add_argument("--state", action="append", metavar="STATE")
    p.add_argument("--limit", type=int, metavar="N")

    p = add("uncertain", cmd_uncertain)
    p.add_argument("--json", action="store_true")
    for action in ("confirm", "resend", "drop"):
        p.add_argument(f"--{action}", type=int, metavar="POST_ID")

    p = add("stats", cmd_stats)
    p.add_argument("--json", action="store_true")

    p = add("demo", cmd_demo)
    p.add_argument("--workdir", metavar="DIR", help="keep the demo database and archive here")
