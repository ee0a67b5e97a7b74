"""The bot's commands: subscribers' (public) and admins' (admin), wired into the Application here."""

from __future__ import annotations

import logging

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, InlineQueryHandler, filters

from bot.handlers import admin, public
from bot.handlers.common import ADMIN_MENU, PUBLIC_MENU, Handler, on_error
from digests.config import Config

log = logging.getLogger(__name__)

PUBLIC_HANDLERS: dict[str, Handler] = {
    "start": public.start,
    "help": public.help_command,
    "search": public.search,
    "latest": public.latest,
    "item": public.item,
}
ADMIN_HANDLERS: dict[str, Handler] = {
    "channels": admin.channels,
    "schedule": admin.schedule,
    "pause": admin.pause,
    "resume": admin.resume,
    "queue": admin.queue,
    "skip": admin.skip,
    "postnow": admin.postnow,
    "comment": admin.comment,
    "uncertain": admin.uncertain,
    "stats": admin.stats,
    "ingest": admin.ingest_command,
}


def register_handlers(application: Application) -> None:
    """Every command, button and inline handler, and the one error handler."""
    # New messages only: an edited "/postnow" must not post twice; channel posts are not commands.
    only_new = filters.UpdateType.MESSAGE
    for name, _ in (*PUBLIC_MENU, *ADMIN_MENU):
        callback = PUBLIC_HANDLERS.get(name) or ADMIN_HANDLERS[name]
        application.add_handler(CommandHandler(name, callback, filters=only_new))
    application.add_handler(CallbackQueryHandler(public.search_page, pattern=r"^s:"))
    application.add_handler(CallbackQueryHandler(admin.resolve, pattern=r"^u:"))
    application.add_handler(InlineQueryHandler(public.inline_search))
    application.add_error_handler(on_error)


async def publish_command_lists(application: Application) -> None:
    """setMyCommands: the subscribers' menu for everyone, the admins' (both lists) in each admin's chat."""
    config: Config = application.bot_data["config"]
    public_menu = [BotCommand(name, text) for name, text in PUBLIC_MENU]
    admin_menu = public_menu + [BotCommand(name, text) for name, text in ADMIN_MENU]
    await application.bot.set_my_commands(public_menu, scope=BotCommandScopeDefault())
    for admin_id in config.telegram.admins:
        try:
            await application.bot.set_my_commands(admin_menu, scope=BotCommandScopeChat(admin_id))
        except TelegramError as exc:  # an admin who never opened the bot has no chat to scope to yet
            log.warning("could not publish the admin commands for %s: %s", admin_id, exc)
