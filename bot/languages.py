"""Which language a user reads: their /lang choice (user_prefs), else their Telegram language_code.

The choices are kept in the database and, on the worker that takes updates, in bot_data (one
read per user, then none): only that worker answers /lang, so what it holds is current. Admin
notices may come from any worker and read the database each time. A database that does not
answer never keeps an answer or a notice from going out: the default rule applies then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from telegram import Update
from telegram.ext import Application, ContextTypes

from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translations, language_of, translations
from digests import actions, views
from digests.store.db import Database

log = logging.getLogger(__name__)

CACHE_KEY = "user_languages"  # bot_data: user id -> the language chosen with /lang, or None
CACHE_SIZE = 10_000  # users remembered; past that the cache starts again (one read per user)


def _cache(application: Application) -> dict[int, str | None]:
    cache: dict[int, str | None] = application.bot_data.setdefault(CACHE_KEY, {})
    return cache


async def chosen_language(application: Application, user_id: int) -> str | None:
    """The language the user chose with /lang, if any (None as well when the database does not answer)."""
    cache = _cache(application)
    if user_id not in cache:
        db: Database = application.bot_data["db"]
        try:
            chosen = await asyncio.to_thread(views.user_languages, db, [user_id])
        except Exception as exc:  # the answer goes out in the default language rather than not at all
            log.warning("could not read the language of user %s: %s", user_id, exc)
            return None
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[user_id] = chosen.get(user_id)
    language = cache[user_id]
    return language if language in LANGUAGES else None


async def language_for(update: object, context: ContextTypes.DEFAULT_TYPE) -> str:
    """The language to answer this update in: the user's /lang choice, else their Telegram language."""
    user = update.effective_user if isinstance(update, Update) else None
    if user is None:
        return DEFAULT_LANGUAGE
    return await chosen_language(context.application, user.id) or language_of(user.language_code)


async def translator(update: object, context: ContextTypes.DEFAULT_TYPE) -> Translations:
    """The catalog to answer this update with."""
    return translations(await language_for(update, context))


async def choose_language(application: Application, user_id: int, language: str | None) -> None:
    """Store a user's /lang choice (None: follow their Telegram language again)."""
    db: Database = application.bot_data["db"]
    await asyncio.to_thread(actions.set_user_language, db, user_id, language)
    _cache(application)[user_id] = language


async def admin_languages(db: Database, admins: Iterable[int]) -> dict[int, str]:
    """Each admin's language for notices: their /lang choice, else zh_CN (a notice has no update to read)."""
    admins = list(admins)
    try:
        chosen = await asyncio.to_thread(views.user_languages, db, admins)
    except Exception as exc:  # a notice about a failing database must still go out
        log.warning("could not read the admins' languages: %s", exc)
        chosen = {}
    return {admin: chosen[admin] if chosen.get(admin) in LANGUAGES else DEFAULT_LANGUAGE for admin in admins}
