"""`digestbot preview`, `publish`, `run` and `demo`: the next posts shown, sent once, sent on schedule."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol

from telegram.error import TelegramError

import digests
from bot.cli.context import EXIT_FAILED, EXIT_USAGE, Context
from bot.cli.output import print_ingest_report, print_json
from bot.i18n import ENGLISH, Notice
from bot.languages import admin_languages
from bot.notify import tell_admins
from bot.startup import problem_of, wait_for_telegram
from bot.telegram_errors import TelegramUnusable
from digests import views
from digests.actions import sync_from_config

log = logging.getLogger(__name__)
SAMPLE_ARCHIVE = Path(digests.__file__).resolve().parent / "sample_archive"


def _message(html: str, photo: str | None, item_ids: list[int]) -> Any:
    from digests.formatting.blurb import Message, visible_length

    return Message(html, photo, list(item_ids), visible_length(html))


class ShownPost(Protocol):
    """What a dry run prints of a post."""

    @property
    def id(self) -> int: ...
    @property
    def digest_number(self) -> int | None: ...
    @property
    def item_ids(self) -> list[Any]: ...
    @property
    def html(self) -> str: ...
    @property
    def photo(self) -> str | None: ...


def _echo_post(channel: str, post: ShownPost) -> None:
    from digests.formatting.preview import render_terminal

    label = f"[dry-run → {channel}] post {post.id}"
    if post.digest_number:
        label += f" · digest #{post.digest_number}"
    print(f"\n\033[2m{label} · items {post.item_ids}\033[0m")
    print(render_terminal(_message(post.html, post.photo, post.item_ids)))


def cmd_preview(ctx: Context) -> int:
    """Show the next posts exactly as they would be sent (terminal, --json, or --html FILE)."""
    from digests.formatting.preview import render_preview_page, render_terminal

    rows: list[dict[str, Any]] = []
    for name in sync_from_config(ctx.db, ctx.config, only=ctx.args.channel):
        for post in views.slot_preview(ctx.db, name, limit=ctx.args.limit):
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
                           connection_pool_size=ctx.config.publish.concurrency + 2, proxy=ctx.config.proxy.telegram)
    return ExtBot(ctx.config.token, base_url=ctx.config.telegram.base_url, request=request)


async def _publish_once(ctx: Context, dry_run: bool, only: str | None = None) -> Any:
    """One slot of each active channel (or of `only`), after config.yaml's channels are synced; None when there are none."""
    from bot.chats import resolve_usernames
    from bot.publisher import Publisher

    if dry_run:
        names = sync_from_config(ctx.db, ctx.config, only=only, retire_missing=True)
        if not names:
            return None
        publisher = Publisher(ctx.db, ctx.config, None, dry_run=True, echo=_echo_post)
        for name in names:
            await publisher.run_slot(name)
        return publisher.stats
    bot = _telegram_bot(ctx)

    async def notify(notice: Notice) -> None:
        admins = ctx.config.telegram.admins
        await tell_admins(bot, admins, notice, await admin_languages(ctx.db, admins))
        print(f"admin notice: {notice(ENGLISH)}", file=sys.stderr)

    async with bot:
        resolved = await resolve_usernames(bot, ctx.config)
        names = await asyncio.to_thread(sync_from_config, ctx.db, ctx.config, only=only, resolved=resolved,
                                        retire_missing=True)
        if not names:
            return None
        publisher = Publisher(ctx.db, ctx.config, bot, notify=notify)
        from digests.store.posts import expire_leases

        expire_leases(ctx.db)
        for name in names:
            await publisher.run_slot(name)
        # a post waiting out flood control is kept and sent before we exit
        while await asyncio.to_thread(views.any_retrying, ctx.db, names):
            await asyncio.sleep(1)
            await publisher.drain()
        return publisher.stats


def cmd_publish(ctx: Context) -> int:
    """Run one slot of each active channel (or --channel NAME) now and exit; for cron users."""
    dry_run = ctx.args.dry_run or not ctx.config.token
    if dry_run and not ctx.args.dry_run:
        print("no telegram.token / DIGESTBOT_TOKEN: dry run, posts are shown here and recorded as dry-run",
              file=sys.stderr)
    if not ctx.config.channels:
        print("no channels configured: add one under channels: in config.yaml", file=sys.stderr)
        return 2
    try:
        stats = asyncio.run(_publish_once(ctx, dry_run, only=ctx.args.channel))
    except TelegramError as exc:  # the bot's first request (getMe): unreachable, a wrong URL or token
        problem = problem_of(exc, ctx.config)
        print(f"digestbot: error: {problem}", file=sys.stderr)
        return EXIT_USAGE if problem.final else EXIT_FAILED
    if stats is None:
        print("nothing to publish: every channel in config.yaml is retired (see `digestbot channels`)",
              file=sys.stderr)
        return 0
    if not dry_run:
        print(f"sent {stats.sent}, retried {stats.retried}, failed {stats.failed}, uncertain {stats.uncertain}, "
              f"flood waits {stats.flood_waits}, edited {stats.edited}, deleted {stats.deleted}")
    return 1 if stats.failed or stats.uncertain or stats.edits_failed else 0


def cmd_run(ctx: Context) -> int:
    """Run the bot: scheduler plus commands by polling or webhook (Ctrl-C stops it)."""
    from bot.app import build_application
    from bot.webhook import run_webhook

    dry_run = ctx.args.dry_run or not ctx.config.token
    if dry_run:
        print("dry run: posts are printed here and recorded as dry-run; no Telegram", file=sys.stderr)
    else:
        try:  # Telegram may come up after us: wait for it rather than exit
            asyncio.run(wait_for_telegram(ctx.config))
        except TelegramUnusable as exc:
            print(f"digestbot: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    application = build_application(ctx.config, ctx.db, dry_run=dry_run, echo=_echo_post,
                                     poll=ctx.config.telegram.poll_commands)
    if application.updater is None:
        asyncio.run(_run_without_polling(application))
    elif ctx.config.telegram.webhook is not None:
        run_webhook(application, ctx.config.telegram.webhook)
    else:
        # bootstrap_retries=-1: should Telegram go away again right after the check, PTB waits for it too
        application.run_polling(drop_pending_updates=False, close_loop=False, bootstrap_retries=-1)
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
        if application.post_stop is not None:  # as run_polling would
            await application.post_stop(application)
    if application.post_shutdown is not None:  # as run_polling would
        await application.post_shutdown(application)


def cmd_demo(ctx: Context) -> int:
    """The whole pipeline on the shipped sample archive, in dry run: ingest, preview, publish."""
    from bot.config import config_from_mapping
    from digests.ingest.pipeline import ingest

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
    print_ingest_report(report)
    report = ingest(ctx.db, [archive])
    print(f"   again: {report.documents_unchanged} unchanged, {report.items_new} new items (nothing doubled)\n")
    print("2. publish one slot of each channel, dry run (no token needed)")
    asyncio.run(_publish_once(ctx, True))
    print("\n3. what was recorded (digestbot deliveries --json):")
    for row in views.delivery_records(ctx.db):
        print(f"   post {row['id']}: {row['state']}, items {row['item_ids']}")

    print("\n4. search the archive, as subscribers do with /search:")
    for query in ("开源", "数据库", "RISC-V"):
        titles = [view.title for view in views.search_listing(ctx.db, query, limit=3).views]
        print(f"   {query}: " + ("；".join(titles) if titles else "nothing found"))
    print(f"\nThe demo database is {workdir / 'demo.db'}; to look around:\n"
          f"   DIGESTBOT_DATABASE_URL=sqlite:///{workdir.resolve() / 'demo.db'} .venv/bin/digestbot search 开源")
    return 0
