"""Subscriber commands: /search (with paging buttons), /latest, /item and inline search."""

from __future__ import annotations

import hashlib
import html
from functools import cache

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Message,
    Update,
)
from telegram.constants import ParseMode

from bot.handlers.common import (
    NO_PREVIEW,
    NOTHING_FOUND,
    Context,
    UsageError,
    day_of,
    id_arg,
    listing_html,
    post_links,
    reply,
    run_db,
)
from bot.i18n import Translations
from bot.ids import BadId, parse_id
from bot.languages import translator
from digests.errors import NotFoundError
from digests.formatting.blurb import BlurbFormatter
from digests.views import Listing, item_listing, latest_listing, search_listing

PAGE_SIZE = 5
INLINE_PAGE_SIZE = 10
SEARCH_MARK = "🔎 "  # a search reply's first line is this and the query: the buttons read it back


@cache
def _formatter() -> BlurbFormatter:
    return BlurbFormatter()


# ---------------------------------------------------------------------------------------------
# /search and its page buttons


def query_key(query: str) -> str:
    """A short digest of the query: a button carries it to check the query it reads back."""
    return hashlib.sha1(query.encode()).hexdigest()[:8]


def search_callback_data(offset: int, query: str) -> str:
    """``s:<offset>:<key>``: stateless (the query stays in the message text), far below 64 bytes."""
    return f"s:{offset}:{query_key(query)}"


def _search_page(query: str, offset: int, listing: Listing,
                 t: Translations) -> tuple[str, InlineKeyboardMarkup | None]:
    page = t.gettext("page {page}").format(page=offset // PAGE_SIZE + 1)
    if listing.total is not None:
        page += " · " + t.ngettext("{total} result", "{total} results", listing.total).format(total=listing.total)
    text = (f"{SEARCH_MARK}{html.escape(query)}\n<i>{page}</i>\n\n"
            f"{listing_html(listing, t, first_number=offset + 1)}")
    buttons = []
    if offset > 0:
        buttons.append(InlineKeyboardButton(t.gettext("‹ previous"),
                                            callback_data=search_callback_data(max(0, offset - PAGE_SIZE), query)))
    if listing.has_more:
        buttons.append(InlineKeyboardButton(t.gettext("next ›"),
                                            callback_data=search_callback_data(offset + PAGE_SIZE, query)))
    return text, InlineKeyboardMarkup([buttons]) if buttons else None


async def search(update: Update, context: Context) -> None:
    """/search WORDS: the first page of matching items."""
    query = " ".join(context.args or [])
    if not query:
        raise UsageError()
    listing = await run_db(context, search_listing, query, limit=PAGE_SIZE)
    t = await translator(update, context)
    if not listing.views:
        await reply(update, t.gettext("Nothing found: {query}").format(query=html.escape(query)))
        return
    text, markup = _search_page(query, 0, listing, t)
    await reply(update, text, markup=markup)


def _query_of(message_text: str | None, key: str) -> str | None:
    """The query a search reply shows in its first line, if it is the one the button was made for."""
    first = (message_text or "").split("\n", 1)[0]
    if not first.startswith(SEARCH_MARK.strip()):
        return None
    query = " ".join(first.removeprefix(SEARCH_MARK.strip()).split())
    return query if query_key(query) == key else None


def _offset(text: str) -> int | None:
    """An offset the bot wrote into a button or inline answer (None: not one, e.g. forged)."""
    try:
        return parse_id(text, "offset")
    except BadId:
        return None


async def search_page(update: Update, context: Context) -> None:
    """A previous/next button under a /search reply: show that page in place."""
    callback = update.callback_query
    assert callback is not None and callback.data is not None
    _, offset_text, key = (callback.data.split(":", 2) + ["", ""])[:3]
    message = callback.message
    query = _query_of(message.text if isinstance(message, Message) else None, key)
    offset = _offset(offset_text)
    t = await translator(update, context)
    if query is None or offset is None:
        await callback.answer(t.gettext("Please search again: /search WORDS"), show_alert=True)
        return
    listing = await run_db(context, search_listing, query, limit=PAGE_SIZE, offset=offset)
    if not listing.views:
        await callback.answer(t.gettext(NOTHING_FOUND))
        return
    text, markup = _search_page(query, offset, listing, t)
    await callback.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup,
                                     link_preview_options=NO_PREVIEW)
    await callback.answer()


# ---------------------------------------------------------------------------------------------
# /latest, /item


async def latest(update: Update, context: Context) -> None:
    """/latest: the five newest items."""
    if context.args:
        raise UsageError()
    listing = await run_db(context, latest_listing, limit=PAGE_SIZE)
    t = await translator(update, context)
    if not listing.views:
        await reply(update, t.gettext(NOTHING_FOUND))
        return
    heading = t.gettext("Latest")
    await reply(update, f"<b>{heading}</b>\n\n{listing_html(listing, t)}")


def _item_html(listing: Listing) -> str:
    view = listing.views[0]
    blurb = _formatter().format_single(view).html
    footer = [f"ID {view.id}", day_of(view.published_at)]
    posted = post_links(listing.posts.get(view.id, ()))
    if posted:
        footer.append(posted)
    return f"{blurb}\n\n{' · '.join(footer)}"


async def item(update: Update, context: Context) -> None:
    """/item ID: one item in full, with its links and where the channel posted it."""
    args = context.args or []
    if len(args) != 1:
        raise UsageError()
    item_id = id_arg(args[0])
    try:
        listing = await run_db(context, item_listing, item_id)
    except NotFoundError:
        t = await translator(update, context)
        await reply(update, t.gettext("Nothing found: ID {id}").format(id=item_id))
        return
    await reply(update, _item_html(listing))


# ---------------------------------------------------------------------------------------------
# Inline mode


def _article(listing: Listing, index: int, t: Translations) -> InlineQueryResultArticle:
    view = listing.views[index]
    blurb = _formatter().format_single(view)
    description = " · ".join(x for x in (day_of(view.published_at), view.source) if x)
    return InlineQueryResultArticle(
        id=str(view.id), title=view.title or t.gettext("(untitled)"), description=description,
        input_message_content=InputTextMessageContent(blurb.html, parse_mode=ParseMode.HTML,
                                                      link_preview_options=NO_PREVIEW),
    )


async def inline_search(update: Update, context: Context) -> None:
    """@bot WORDS in any chat: matching items, each shared as its blurb (no words: the newest)."""
    inline = update.inline_query
    assert inline is not None
    query = " ".join(inline.query.split())
    offset = _offset(inline.offset) or 0
    if query:
        listing = await run_db(context, search_listing, query, limit=INLINE_PAGE_SIZE, offset=offset)
    else:
        listing = await run_db(context, latest_listing, limit=INLINE_PAGE_SIZE)
    t = await translator(update, context)
    results = [_article(listing, i, t) for i in range(len(listing.views))]
    button = None
    if not results and offset == 0:
        button = InlineQueryResultsButton(text=t.gettext(NOTHING_FOUND), start_parameter="nothing_found")
    await inline.answer(results, cache_time=60, next_offset=str(offset + INLINE_PAGE_SIZE) if listing.has_more else "",
                        button=button)
