"""Every bot command in one table: who may run it, its menu text and usage, its handler.

The table is read three times: to register the handlers (admin rows behind the admin gate), to
publish the command menus (setMyCommands: the public rows for everyone, all rows in each admin's
chat; once per language) and to write /start and /help. A new command is a row here and a handler
in bot/handlers/. Menu and usage texts are English message ids, translated where they are shown.
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
from bot.handlers import admin, language, public, sources
from bot.handlers.common import (
    Context,
    Handler,
    UsageError,
    admin_only,
    is_admin,
    on_error,
    problem_text,
    reply,
)
from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, Translations, translations
from bot.languages import translator

log = logging.getLogger(__name__)

WELCOME = N_("Hello! This bot searches the archive of the 硬核观察 tech-news column.")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    audience: Literal["public", "admin"]
    menu: str  # the command menu's text and /help's line
    usage: str  # the answer to a UsageError from the handler
    handler: Handler


def help_text(admin_too: bool, t: Translations) -> str:
    """/help: the public commands, then the admins' when the reader is one."""
    _ = t.gettext
    lines = [f"/{c.name} — {html.escape(_(c.menu))}" for c in COMMANDS if c.audience == "public"]
    lines.append(html.escape(_("@bot WORDS — share results in any chat")))
    if admin_too:
        heading = html.escape(_("Admin"))
        lines.append(f"\n<b>{heading}</b>")
        lines += [f"/{c.name} — {html.escape(_(c.menu))}" for c in COMMANDS if c.audience == "admin"]
    return "\n".join(lines)


def _reader_is_admin(update: Update, context: Context) -> bool:
    user = update.effective_user
    return is_admin(context, user.id if user else None)


async def start(update: Update, context: Context) -> None:
    """Greet the user and show what the bot can do."""
    t = await translator(update, context)
    await reply(update, f"{html.escape(t.gettext(WELCOME))}\n\n{help_text(_reader_is_admin(update, context), t)}")


async def help_command(update: Update, context: Context) -> None:
    """List the commands (admins see theirs as well)."""
    await reply(update, help_text(_reader_is_admin(update, context), await translator(update, context)))


COMMANDS: tuple[Command, ...] = (
    Command("search", "public", N_("search the archive: /search WORDS"),
            N_("Usage: /search WORDS (for example /search 开源)"), public.search),
    Command("latest", "public", N_("the newest items"), N_("Usage: /latest"), public.latest),
    Command("item", "public", N_("one item: /item ID"),
            N_("Usage: /item ID (the ID in the search results)"), public.item),
    Command("lang", "public", N_("the language of the replies: /lang en|zh"), N_("Usage: /lang [en|zh|auto]"),
            language.lang),
    Command("help", "public", N_("help"), N_("Usage: /help"), help_command),
    Command("start", "public", N_("start"), N_("Usage: /start"), start),
    Command("channels", "admin", N_("channels, schedules and queues"), N_("Usage: /channels"), admin.channels),
    Command("schedule", "admin", N_("show or set a schedule: /schedule CHANNEL [set CRON]"),
            N_("Usage: /schedule CHANNEL [set CRON]\n"
               "Examples: /schedule main set 0 9 * * *\n"
               "          /schedule main set 0 9 * * *; 30 18 * * 1-5\n"
               "          /schedule main set every 2h"), admin.schedule),
    Command("pause", "admin", N_("pause a channel: /pause CHANNEL"), N_("Usage: /pause CHANNEL [REASON]"),
            admin.pause),
    Command("resume", "admin", N_("resume a channel: /resume CHANNEL"), N_("Usage: /resume CHANNEL"), admin.resume),
    Command("queue", "admin", N_("the next posts with previews: /queue CHANNEL"), N_("Usage: /queue CHANNEL"),
            admin.queue),
    Command("skip", "admin", N_("never post an item: /skip [CHANNEL] ITEM"),
            N_("Usage: /skip [CHANNEL] ITEM (CHANNEL may be left out when there is only one)"), admin.skip),
    Command("postnow", "admin", N_("post now: /postnow CHANNEL [ITEM]"), N_("Usage: /postnow CHANNEL [ITEM...]"),
            admin.postnow),
    Command("comment", "admin", N_("editor's commentary: /comment ITEM TEXT"), N_("Usage: /comment ITEM TEXT"),
            admin.comment),
    Command("uncertain", "admin", N_("posts that may not have been sent"), N_("Usage: /uncertain"),
            admin.uncertain),
    Command("stats", "admin", N_("items, posts, 429s, last posts"), N_("Usage: /stats"), admin.stats),
    Command("ingest", "admin", N_("ingest archive.paths now"), N_("Usage: /ingest"), admin.ingest_command),
    Command("sources", "admin", N_("feeds, folders and git repositories: /sources [on|off|refresh NAME]"),
            N_("Usage: /sources — every source's health\n"
               "       /sources on NAME — switch a source on again (its failures forgotten)\n"
               "       /sources off NAME — switch a source off\n"
               "       /sources refresh NAME — fetch it now"), sources.sources_command),
)


def _callback(command: Command) -> Handler:
    """The command's handler, answering its UsageError with the usage, behind the admin gate if need be."""
    handler = command.handler

    @functools.wraps(handler)
    async def run(update: Update, context: Context) -> None:
        try:
            await handler(update, context)
        except UsageError as exc:
            t = await translator(update, context)
            usage = html.escape(t.gettext(command.usage))
            problem = problem_text(exc.problem, t) if exc.problem else ""
            await reply(update, f"{html.escape(problem)}\n{usage}" if problem else usage)

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


def menu(audiences: tuple[str, ...], t: Translations) -> list[BotCommand]:
    return [BotCommand(c.name, t.gettext(c.menu)) for c in COMMANDS if c.audience in audiences]


async def publish_command_lists(application: Application) -> None:
    """setMyCommands: the subscribers' menu for everyone, the admins' (both lists) in each admin's chat.

    Each in every language: zh_CN without a language_code (what anyone else sees), en for users
    whose Telegram is in English.
    """
    config: BotConfig = application.bot_data["config"]
    for lang in LANGUAGES:
        t, code = translations(lang), None if lang == DEFAULT_LANGUAGE else lang
        public_menu, admin_menu = menu(("public",), t), menu(("public", "admin"), t)
        await application.bot.set_my_commands(public_menu, scope=BotCommandScopeDefault(), language_code=code)
        for admin_id in config.telegram.admins:
            try:
                await application.bot.set_my_commands(admin_menu, scope=BotCommandScopeChat(admin_id),
                                                      language_code=code)
            except TelegramError as exc:  # an admin who never opened the bot has no chat to scope to yet
                log.warning("could not publish the %s admin commands for %s: %s", lang, admin_id, exc)
