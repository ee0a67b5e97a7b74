"""/lang: the language of the bot's replies to one user, kept in the database across restarts."""

from __future__ import annotations

import html

from telegram import Update

from bot.handlers.common import Context, UsageError, reply
from bot.i18n import LANGUAGE_NAMES, choice_of, language_of, translations
from bot.languages import choose_language, chosen_language, translator

AUTO = "auto"  # /lang auto: forget the choice, follow the user's Telegram language again


async def lang(update: Update, context: Context) -> None:
    """/lang [en|zh|auto]: show the language and the choices, or choose one."""
    args = context.args or []
    user = update.effective_user
    if len(args) > 1 or user is None:
        raise UsageError()
    if not args:
        chosen = await chosen_language(context.application, user.id)
        language = chosen or language_of(user.language_code)
        t = translations(language)
        current = (t.gettext("Language: {language} (chosen with /lang).") if chosen
                   else t.gettext("Language: {language} (from your Telegram settings).")
                   ).format(language=LANGUAGE_NAMES[language])
        choices = "\n".join([f"/lang en — {LANGUAGE_NAMES['en']}", f"/lang zh — {LANGUAGE_NAMES['zh_CN']}",
                             f"/lang {AUTO} — " + t.gettext("follow your Telegram settings")])
        await reply(update, html.escape(f"{current}\n{choices}"))
        return
    word = args[0].strip().lower()
    choice = None if word == AUTO else choice_of(word)
    if choice is None and word != AUTO:
        t = await translator(update, context)
        raise UsageError(t.gettext("There is no language {word}.").format(word=args[0]))
    await choose_language(context.application, user.id, choice)
    language = choice or language_of(user.language_code)
    t = translations(language)
    done = (t.gettext("Language set: {language}.") if choice
            else t.gettext("Language: {language} (from your Telegram settings)."))
    await reply(update, html.escape(done.format(language=LANGUAGE_NAMES[language])))
