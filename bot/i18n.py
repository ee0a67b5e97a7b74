"""The bot's languages: gettext catalogs (zh_CN, the default, and en), and the rule for a Telegram language_code.

Message ids are the English text (standard gettext). The catalogs are the .po files in
bot/locale/<language>/LC_MESSAGES/digestbot.po, compiled in memory with Babel the first time a
language is used (about 0.15 s for both, once per process; a CLI command that sends nothing never
pays it). So no .mo is kept in git or built at install, nothing can be older than its .po, and an
edited .po takes effect at the next start. `make messages` extracts and updates the catalogs.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable
from functools import cache
from io import BytesIO
from pathlib import Path

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "digestbot"
DEFAULT_LANGUAGE = "zh_CN"
LANGUAGES = ("zh_CN", "en")
LANGUAGE_NAMES = {"zh_CN": "简体中文", "en": "English"}  # each in itself, so a reader finds their own
# What /lang accepts, lower case.
CHOICES = {"zh": "zh_CN", "zh_cn": "zh_CN", "zh-cn": "zh_CN", "zh-hans": "zh_CN", "cn": "zh_CN", "中文": "zh_CN",
           "en": "en", "english": "en"}

Translations = gettext.NullTranslations
Notice = Callable[[Translations], str]  # a message to admins, written once per admin's language
ENGLISH = gettext.NullTranslations()  # the message ids as they are: English, without reading a catalog


def N_(message: str) -> str:
    """Mark a message for extraction where it cannot be translated yet; it is translated where shown."""
    return message


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalog(language: str) -> gettext.GNUTranslations:
    """The language's .po compiled in memory (fuzzy entries left out, as msgfmt does)."""
    from babel.messages.mofile import write_mo  # Babel's import alone takes 0.08 s: only when needed
    from babel.messages.pofile import read_po

    path = catalog_path(language)
    try:
        with path.open("rb") as po:
            catalog = read_po(po, locale=language, domain=DOMAIN)
    except OSError as exc:
        raise RuntimeError(f"the {language} message catalog {path} cannot be read ({exc.strerror}): "
                           "reinstall hardcore-digest") from None
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def translations(language: str) -> Translations:
    """The catalog of a language (the default one for a language the bot does not have)."""
    return _compiled(language if language in LANGUAGES else DEFAULT_LANGUAGE)


@cache
def _compiled(language: str) -> Translations:
    return compile_catalog(language)


def language_of(language_code: str | None) -> str:
    """The language for a Telegram user's language_code: en* reads English; zh*, any other and none zh_CN."""
    if language_code and re.match(r"en(?:$|[-_])", language_code, re.IGNORECASE):
        return "en"
    return DEFAULT_LANGUAGE


def choice_of(word: str) -> str | None:
    """The language /lang WORD names, or None."""
    return CHOICES.get(word.strip().lower())
