"""Every bot command in one table: who may run it, its menu text and usage, its handler.

The table is read three times: to register the handlers (admin rows behind the admin gate), to
publish the command menus (setMyCommands: the public rows for everyone, all rows in each admin's
chat) and to write /start and /help. A new command is a row here and a handler in bot/handlers/.
"""

from __future__ import annotations

import functools
import html
import logging
from dataclasses import dataclass
from typing import Literal

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, InlineQueryHandler, filters

from bot.config import BotConfig
from bot.handlers import admin, public, sources
from bot.handlers.common import Context, Handler, UsageError, admin_only, is_admin, on_error, reply

log = logging.getLogger(__name__)

WELCOME = ("你好！这里可以搜索「硬核观察」的新闻归档。\n"
           "Hello! This bot searches the archive of the 硬核观察 tech-news column.")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    audience: Literal["public", "admin"]
    menu: str  # the command menu's text and /help's line
    usage: str  # the answer to a UsageError from the handler
    handler: Handler


def help_text(admin_too: bool) -> str:
    """/help: the public commands, then the admins' when the reader is one."""
    lines = [f"/{c.name} — {html.escape(c.menu)}" for c in COMMANDS if c.audience == "public"]
    lines.append("@bot 关键词 — 在任意聊天里分享 / share results in any chat")
    if admin_too:
        lines.append("\n<b>Admin</b>")
        lines += [f"/{c.name} — {html.escape(c.menu)}" for c in COMMANDS if c.audience == "admin"]
    return "\n".join(lines)


def _reader_is_admin(update: Update, context: Context) -> bool:
    user = update.effective_user
    return is_admin(context, user.id if user else None)


async def start(update: Update, context: Context) -> None:
    """Greet the user and show what the bot can do."""
    await reply(update, f"{html.escape(WELCOME)}\n\n{help_text(_reader_is_admin(update, context))}")


async def help_command(update: Update, context: Context) -> None:
    """List the commands (admins see theirs as well)."""
    await reply(update, help_text(_reader_is_admin(update, context)))


COMMANDS: tuple[Command, ...] = (
    Command("search", "public", "搜索归档 / search the archive: /search WORDS",
            "Usage: /search WORDS\n用法：/search 关键词（例如 /search 开源）", public.search),
    Command("latest", "public", "最新条目 / the newest items", "Usage: /latest", public.latest),
    Command("item", "public", "查看一条 / one item: /item ID",
            "Usage: /item ID\n用法：/item 编号（搜索结果里的 ID）", public.item),
    Command("help", "public", "帮助 / help", "Usage: /help", help_command),
    Command("start", "public", "开始 / start", "Usage: /start", start),
    Command("channels", "admin", "channels, schedules and queues", "Usage: /channels", admin.channels),
    Command("schedule", "admin", "show or set a schedule: /schedule CHANNEL [set CRON]",
            "Usage: /schedule CHANNEL [set CRON]\n"
            "Examples: /schedule main set 0 9 * * *\n"
            "          /schedule main set 0 9 * * *; 30 18 * * 1-5\n"
            "          /schedule main set every 2h", admin.schedule),
    Command("pause", "admin", "pause a channel: /pause CHANNEL", "Usage: /pause CHANNEL [REASON]", admin.pause),
    Command("resume", "admin", "resume a channel: /resume CHANNEL", "Usage: /resume CHANNEL", admin.resume),
    Command("queue", "admin", "the next posts with previews: /queue CHANNEL", "Usage: /queue CHANNEL",
            admin.queue),
    Command("skip", "admin", "never post an item: /skip [CHANNEL] ITEM",
            "Usage: /skip [CHANNEL] ITEM (CHANNEL may be left out when there is only one)", admin.skip),
    Command("postnow", "admin", "post now: /postnow CHANNEL [ITEM]", "Usage: /postnow CHANNEL [ITEM...]",
            admin.postnow),
    Command("comment", "admin", "editor's commentary: /comment ITEM TEXT", "Usage: /comment ITEM TEXT",
            admin.comment),
    Command("uncertain", "admin", "posts that may not have been sent", "Usage: /uncertain", admin.uncertain),
    Command("stats", "admin", "items, posts, 429s, last posts", "Usage: /stats", admin.stats),
    Command("ingest", "admin", "ingest archive.paths now", "Usage: /ingest", admin.ingest_command),
    Command("sources", "admin", "feeds, folders and git repositories: /sources [on|off|refresh NAME]",
            "Usage: /sources — every source's health\n"
            "       /sources on NAME — switch a source on again (its failures forgotten)\n"
            "       /sources off NAME — switch a source off\n"
            "       /sources refresh NAME — fetch it now", sources.sources_command),
)


def _callback(command: Command) -> Handler:
    """The command's handler, answering its UsageError with the usage, behind the admin gate if need be."""
    handler = command.handler

    @functools.wraps(handler)
    async def run(update: Update, context: Context) -> None:
        try:
            await handler(update, context)
        except UsageError as exc:
            usage = html.escape(command.usage)
            await reply(update, f"{html.escape(exc.problem)}\n{usage}" if exc.problem else usage)

    return admin_only(run) if command.audience == "admin" else run


def register_handlers(application: Application) -> None:
    """Every command, button and inline handler, and the one error handler."""
    # New messages only: an edited "/postnow" must not post twice; channel posts are not commands.
    only_new = filters.UpdateType.MESSAGE
    for command in COMMANDS:
        application.add_handler(CommandHandler(command.name, _callback(command), filters=only_new))
    application.add_handler(CallbackQueryHandler(public.search_page, pattern=r"^s:"))
    application.add_handler(CallbackQueryHandler(admin.resolve, pattern=r"^u:"))
    application.add_handler(InlineQueryHandler(public.inline_search))
    application.add_error_handler(on_error)


async def publish_command_lists(application: Application) -> None:
    """setMyCommands: the subscribers' menu for everyone, the admins' (both lists) in each admin's chat."""
    config: BotConfig = application.bot_data["config"]
    public_menu = [BotCommand(c.name, c.menu) for c in COMMANDS if c.audience == "public"]
    admin_menu = public_menu + [BotCommand(c.name, c.menu) for c in COMMANDS if c.audience == "admin"]
    await application.bot.set_my_commands(public_menu, scope=BotCommandScopeDefault())
    for admin_id in config.telegram.admins:
        try:
            await application.bot.set_my_commands(admin_menu, scope=BotCommandScopeChat(admin_id))
        except TelegramError as exc:  # an admin who never opened the bot has no chat to scope to yet
            log.warning("could not publish the admin commands for %s: %s", admin_id, exc)
