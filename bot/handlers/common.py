"""What subscriber and admin handlers share: database calls, replies, links, UsageError, the admin gate, the error handler."""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.config import BotConfig
from bot.i18n import ENGLISH, N_, Translations
from bot.ids import BadId, parse_id
from bot.languages import translator
from bot.notify import notify_admins
from digests.errors import NotFoundError
from digests.formatting.times import format_day
from digests.items import ItemView
from digests.store.db import Database
from digests.views import Listing, PostRef

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Context = ContextTypes.DEFAULT_TYPE
Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
NOTHING_FOUND = N_("Nothing found")
REFUSAL = N_("Sorry, this command is for the channel's admins.")
APOLOGY = N_("Sorry, something went wrong; the admins have been told.")
ERROR_REPEAT_WINDOW = 300.0  # seconds in which the same error is told to the admins only once


class UsageError(Exception):
    """A command used wrongly: bot.commands answers with the problem, if any, and the command's usage.

    The problem is a text, or the digests error that says it (worded in the user's language then).
    """

    def __init__(self, problem: str | Exception | None = None) -> None:
        super().__init__(str(problem or ""))
        self.problem = problem


NOT_FOUND = {
    "item": N_("no item {name}"),
    "channel": N_("no channel '{name}' (channels: {known})"),
    "source": N_("no source named '{name}' (digestbot sources lists them)"),
    "post": N_("no uncertain or failed post {name}"),
    "retired channel": N_("channel '{name}' is retired ({reason}): it posts nothing"),
}


def problem_text(problem: str | Exception, t: Translations) -> str:
    """A problem as the user reads it: a digests NotFoundError in their language, anything else as it is."""
    if isinstance(problem, NotFoundError) and problem.what in NOT_FOUND:
        known = ", ".join(problem.known) or t.gettext("none configured")
        return t.gettext(NOT_FOUND[problem.what]).format(name=problem.name, known=known, reason=problem.reason)
    return str(problem)


def id_arg(text: str, what: str = "ID") -> int:
    """A command's id argument; UsageError when it is none (naming the problem when it is too large)."""
    try:
        return parse_id(text, what)
    except BadId as exc:
        raise UsageError(str(exc) if exc.digits else None) from None


def db_of(context: Context) -> Database:
    db: Database = context.bot_data["db"]
    return db


def config_of(context: Context) -> BotConfig:
    config: BotConfig = context.bot_data["config"]
    return config


async def run_db(context: Context, fn: Callable[Concatenate[Database, P], T], *args: P.args,
                 **kwargs: P.kwargs) -> T:
    """fn(db, ...) in a worker thread: the event loop never waits on the database."""
    return await asyncio.to_thread(fn, db_of(context), *args, **kwargs)


def actor_of(update: Update) -> str:
    """Who did it, as the audit log names a Telegram user."""
    user = update.effective_user
    return f"tg:{user.id}" if user else "tg:unknown"


def is_admin(context: Context, user_id: int | None) -> bool:
    return user_id is not None and user_id in config_of(context).telegram.admins


async def reply(update: Update, text: str, *, markup: InlineKeyboardMarkup | None = None) -> Message | None:
    """Answer the message of this update in HTML (text already escaped), without link previews."""
    message = update.effective_message
    if message is None:
        return None
    return await message.reply_html(text, reply_markup=markup, link_preview_options=NO_PREVIEW)


def admin_only(handler: Handler) -> Handler:
    """Run handler for admins only; anyone else gets a short refusal and a WARNING in the log."""

    @functools.wraps(handler)
    async def gated(update: Update, context: Context) -> None:
        user = update.effective_user
        if not is_admin(context, user.id if user else None):
            log.warning("refused %s to user %s", handler.__name__, user.id if user else None)
            _ = (await translator(update, context)).gettext
            if update.callback_query is not None:
                await update.callback_query.answer(_(REFUSAL), show_alert=True)
            else:
                await reply(update, html.escape(_(REFUSAL)))
            return
        await handler(update, context)

    return gated


# ---------------------------------------------------------------------------------------------
# Items as lines of a reply

_CHANNEL_ID = re.compile(r"^-100(\d+)$")


def post_url(chat_id: str, message_id: int) -> str | None:
    """The t.me link of a channel message: @name -> t.me/name/N, -100id -> t.me/c/id/N; else None."""
    chat_id = chat_id.strip()
    if chat_id.startswith("@"):
        return f"https://t.me/{chat_id[1:]}/{message_id}"
    match = _CHANNEL_ID.match(chat_id)
    if match:
        return f"https://t.me/c/{match.group(1)}/{message_id}"
    return None


def day_of(moment: datetime | None) -> str:
    """An item's day as the archive's readers saw it (the CLI shows it the same way)."""
    return format_day(moment)


def link(url: str, text: str) -> str:
    """<a> for http(s) URLs; just the escaped text for anything else."""
    if url.startswith(("http://", "https://")):
        return f'<a href="{html.escape(url, quote=True)}">{html.escape(text)}</a>'
    return html.escape(text)


def post_links(refs: Sequence[PostRef]) -> str:
    links = []
    for ref in refs:
        url = post_url(ref.chat_id, ref.message_id)
        if url:
            links.append(link(url, f"📢 {ref.channel}"))
    return " ".join(links)


def item_line(number: int | None, view: ItemView, refs: Sequence[PostRef], t: Translations) -> str:
    """One item: its title linked to the original, then date, source, id and its channel posts."""
    title = link(view.url, view.title or t.gettext("(untitled)"))
    details = [day_of(view.published_at)]
    if view.source:
        details.append(html.escape(view.source))
    details.append(f"ID {view.id}")
    posted = post_links(refs)
    if posted:
        details.append(posted)
    head = f"<b>{number}.</b> " if number is not None else ""
    return f"{head}{title}\n{' · '.join(details)}"


def listing_html(listing: Listing, t: Translations, *, first_number: int = 1) -> str:
    return "\n\n".join(item_line(first_number + i, view, listing.posts.get(view.id, ()), t)
                       for i, view in enumerate(listing.views))


# ---------------------------------------------------------------------------------------------
# The one error handler


def _told_recently(context: Context, key: str, now: float) -> bool:
    told: dict[str, float] = context.bot_data.setdefault("errors_told", {})
    for old in [k for k, at in told.items() if now - at > ERROR_REPEAT_WINDOW]:
        del told[old]
    if key in told:
        return True
    told[key] = now
    return False


def _what(update: object, t: Translations) -> str:
    _ = t.gettext
    if isinstance(update, Update):
        if update.effective_message is not None and update.effective_message.text:
            return repr(update.effective_message.text[:80])
        if update.callback_query is not None:
            return _("button {data}").format(data=repr(update.callback_query.data))
        if update.inline_query is not None:
            return _("inline query {query}").format(query=repr(update.inline_query.query[:80]))
        return _("update {id}").format(id=update.update_id)
    return _("a background job")


async def on_error(update: object, context: Context) -> None:
    """Log the exception, tell the admins once per distinct error, apologise to the user."""
    error = context.error
    what = _what(update, ENGLISH)
    log.error("error while handling %s", what, exc_info=error)
    key = f"{type(error).__name__}: {error}"
    if not _told_recently(context, key, time.monotonic()):
        await notify_admins(context.application, lambda t: t.gettext(
            "Error while handling {what}: {error}\nDetails are in the log.").format(what=_what(update, t), error=key[:600]))
    if not isinstance(update, Update):
        return
    _ = (await translator(update, context)).gettext
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(_(APOLOGY), show_alert=True)
        elif update.effective_message is not None and update.effective_chat is not None:
            await context.bot.send_message(update.effective_chat.id, _(APOLOGY))
    except TelegramError as exc:  # the apology is a courtesy; its failure is logged, never raised
        log.warning("could not apologise for %s: %s", what, exc)
