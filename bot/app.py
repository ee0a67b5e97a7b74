"""Wiring: one place that builds the python-telegram-bot Application for `digestbot run`."""

from __future__ import annotations

import logging
from typing import Any

from telegram import User
from telegram.ext import Application, ApplicationBuilder, ContextTypes, ExtBot

from bot import scheduler, service, sources_runner
from bot.chats import resolve_usernames
from bot.commands import publish_command_lists, register_handlers
from bot.config import BotConfig
from bot.i18n import Notice
from bot.notify import notify_admins
from bot.publisher import Publisher
from bot.reply_limiter import ReplyLimiter
from digests.actions import sync_from_config
from digests.store.db import Database
from digests.store.posts import expire_leases

log = logging.getLogger(__name__)
DRY_RUN_TOKEN = "0:dry-run"


class DryRunBot(ExtBot[Any]):
    """A bot that never reaches Telegram: `run --dry-run` works without a token or a network."""

    async def get_me(self, *args: Any, **kwargs: Any) -> User:
        user = User(id=0, first_name="dry-run", is_bot=True, username="digestbot_dry_run")
        self._bot_user = user
        return user


def build_application(config: BotConfig, db: Database, *, dry_run: bool = False,
                      echo: Any = None, poll: bool = True) -> Application:
    """The Application with its handlers, publisher and scheduler; not started."""
    token = config.token
    dry_run = dry_run or not token
    # Any: the builder's type parameter changes with the bot class (DryRunBot or the real one).
    builder: Any = ApplicationBuilder().concurrent_updates(True)
    timeout = config.telegram.request_timeout
    replies = ReplyLimiter(group_per_minute=config.limits.channel_per_minute)
    if dry_run:
        builder = builder.bot(DryRunBot(DRY_RUN_TOKEN)).updater(None)
    else:
        builder = (builder.token(token).base_url(config.telegram.base_url)
                   .connection_pool_size(config.publish.concurrency + 8)
                   .connect_timeout(timeout).read_timeout(timeout).write_timeout(timeout)
                   .get_updates_read_timeout(timeout + 30).rate_limiter(replies))
        if config.telegram.base_file_url:
            builder = builder.base_file_url(config.telegram.base_file_url)
        if not poll:
            builder = builder.updater(None)
    if config.proxy.telegram and not dry_run:
        builder = builder.proxy(config.proxy.telegram).get_updates_proxy(config.proxy.telegram)
    builder = builder.post_init(_post_init).post_stop(_post_stop).post_shutdown(service.on_shutdown)
    application = builder.build()

    async def notify(notice: Notice) -> None:
        await notify_admins(application, notice)

    publisher = Publisher(db, config, None if dry_run else application.bot, dry_run=dry_run, notify=notify,
                          echo=echo)
    replies.share(publisher.limiter)  # replies and channel posts count in one global window
    application.bot_data.update(db=db, config=config, dry_run=dry_run, publisher=publisher)
    register_handlers(application)
    return application


async def _post_init(application: Application) -> None:
    """Start-up: channels from config (matched by chat), leases of a crashed run, jobs, missed slots."""
    db: Database = application.bot_data["db"]
    config: BotConfig = application.bot_data["config"]
    resolved = {} if application.bot_data.get("dry_run") else await resolve_usernames(application.bot, config)
    sync_from_config(db, config, resolved=resolved, retire_missing=True)
    stale = expire_leases(db)
    if stale:
        await notify_admins(application, lambda t: t.ngettext(
            "{count} post was being sent when the bot stopped; its outcome is unknown and it waits for your word: "
            "/uncertain",
            "{count} posts were being sent when the bot stopped; their outcome is unknown and they wait for your "
            "word: /uncertain", stale).format(count=stale))
    scheduler.schedule_all(application)
    await service.on_start(application)
    if not application.bot_data.get("dry_run"):
        try:
            await publish_command_lists(application)
        except Exception as exc:  # the command menu is a convenience; never stop start-up for it
            log.warning("could not publish the command lists: %s", exc)
    application.job_queue.run_once(_missed, when=0, name="missed-slots")  # type: ignore[union-attr]
    sources_runner.start_sources(application, lambda notice: notify_admins(application, notice))


async def _post_stop(application: Application) -> None:
    sources_runner.stop_sources(application)


async def _missed(context: ContextTypes.DEFAULT_TYPE) -> None:
    await scheduler.run_missed_slots(context.application)
