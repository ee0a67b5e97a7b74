"""Telling the admins: a private message to each admin in config, never an exception to the caller."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from telegram import Bot
from telegram.ext import Application

from bot.config import BotConfig

log = logging.getLogger(__name__)


async def tell_admins(bot: Bot, admins: Iterable[int], text: str) -> None:
    """Send text to every admin; failures are logged, not raised."""
    for admin in admins:
        try:
            await bot.send_message(admin, text)
        except Exception as exc:  # an admin who never started the bot cannot be messaged
            log.warning("could not tell admin %s: %s", admin, exc)


async def notify_admins(application: Application, text: str) -> None:
    """Tell every admin in config (in a dry run, only the log hears it)."""
    config: BotConfig = application.bot_data["config"]
    if application.bot_data.get("dry_run"):
        log.warning("admin notice: %s", text)
        return
    await tell_admins(application.bot, config.telegram.admins, text)
