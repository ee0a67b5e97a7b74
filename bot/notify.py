"""Telling the admins: a private message to each admin in config, in their language, never raising."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from telegram import Bot
from telegram.ext import Application

from bot.config import BotConfig
from bot.i18n import DEFAULT_LANGUAGE, ENGLISH, Notice, translations
from bot.languages import admin_languages

log = logging.getLogger(__name__)


async def tell_admins(bot: Bot, admins: Iterable[int], notice: Notice, languages: Mapping[int, str]) -> None:
    """Send the notice to every admin, each in their language; failures are logged, not raised."""
    for admin in admins:
        try:
            await bot.send_message(admin, notice(translations(languages.get(admin, DEFAULT_LANGUAGE))))
        except Exception as exc:  # an admin who never started the bot cannot be messaged
            log.warning("could not tell admin %s: %s", admin, exc)


async def notify_admins(application: Application, notice: Notice) -> None:
    """Tell every admin in config (in a dry run, only the log hears it, in English)."""
    config: BotConfig = application.bot_data["config"]
    if application.bot_data.get("dry_run"):
        log.warning("admin notice: %s", notice(ENGLISH))
        return
    admins = config.telegram.admins
    await tell_admins(application.bot, admins, notice, await admin_languages(application.bot_data["db"], admins))
