"""The message catalogs against the source: every message the bot marks is translated in zh_CN and en,
none is left over, every translation keeps its placeholders; and which language a user reads."""

from __future__ import annotations

import ast
import fnmatch
import string
import tomllib
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, catalog_path, choice_of, language_of, translations

ROOT = Path(__file__).resolve().parent.parent
MessageId = str | tuple[str, ...]  # a plural message: (singular, plural)
GETTEXT_NAMES = {name for name in DEFAULT_KEYWORDS if "gettext" in name or name in ("_", "N_")}


@cache
def source_messages() -> dict[MessageId, list[str]]:
    """What `pybabel extract -F babel.cfg` finds: message id -> where (file:line)."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[MessageId, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS):
        key = message if isinstance(message, str) else tuple(message)
        found.setdefault(key, []).append(f"{filename}:{lineno}")
    return found


def catalog(language: str) -> Catalog:
    with catalog_path(language).open("rb") as po:
        return read_po(po)


def entries(cat: Catalog) -> dict[MessageId, str | tuple[str, ...]]:
    return {(m.id if isinstance(m.id, str) else tuple(m.id)): m.string for m in cat if m.id}


def fields(text: str) -> set[str]:
    """The {placeholders} of a message; ValueError for a stray brace (str.format would raise too)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_source_has_messages_to_translate() -> None:
    messages = source_messages()
    assert len(messages) > 100
    assert "Nothing found" in messages and ("{total} result", "{total} results") in messages
    assert all(location.startswith("bot/") for where in messages.values() for location in where)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_and_none_is_left_over(language: str) -> None:
    messages, cat = source_messages(), catalog(language)
    translated = entries(cat)
    assert sorted(map(str, set(messages) - set(translated))) == [], "untranslated: run `make messages`"
    assert sorted(map(str, set(translated) - set(messages))) == [], "obsolete: run `make messages`"
    assert not cat.obsolete
    fuzzy = [m.id for m in cat if m.id and m.fuzzy]
    assert fuzzy == [], "fuzzy entries are not used: check and unmark them"
    empty = [key for key, text in translated.items() if not all(text if isinstance(text, tuple) else [text])]
    assert empty == []
    if language == "en":  # the ids are English: make messages copies them
        assert all(text == (key if isinstance(key, str) else key[: len(text)]) for key, text in translated.items())
    else:
        assert cat.num_plurals == 1  # Chinese has one form
        assert all(text != key for key, text in translated.items() if isinstance(key, str) and key.isascii())


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_the_placeholders_and_write_no_html(language: str) -> None:
    for key, text in entries(catalog(language)).items():
        wanted = fields(key) if isinstance(key, str) else set().union(*map(fields, key))
        for form in [text] if isinstance(text, str) else text:
            assert fields(form) == wanted, (key, form)
            # Replies are HTML: markup comes from the code around a message, never from a catalog.
            assert not set(form) & set("<>&"), (key, form)


def test_every_marked_string_in_the_source_is_extracted() -> None:
    """A call Babel cannot see (say, inside an f-string) would be left untranslated without a word."""
    extracted = {part for key in source_messages() for part in ([key] if isinstance(key, str) else key)}
    missed = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in GETTEXT_NAMES:
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value not in extracted:
                    missed.append(f"{path.relative_to(ROOT)}:{node.lineno}: {arg.value!r}")
    assert missed == []


def test_the_catalogs_are_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["bot"]
    for language in LANGUAGES:
        relative = catalog_path(language).relative_to(ROOT / "bot").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_catalogs_compile_and_plurals_follow_each_language() -> None:
    chinese, english = translations("zh_CN"), translations("en")
    assert chinese.gettext("Nothing found") == "没有找到" and english.gettext("Nothing found") == "Nothing found"
    assert [english.ngettext("{total} result", "{total} results", n) for n in (1, 2)] == ["{total} result",
                                                                                         "{total} results"]
    assert {chinese.ngettext("{total} result", "{total} results", n) for n in (1, 2)} == {"共 {total} 条"}
    assert translations("fr") is translations(DEFAULT_LANGUAGE)


@pytest.mark.parametrize(("code", "language"), [
    ("en", "en"), ("en-US", "en"), ("EN_gb", "en"),
    ("zh-hans", "zh_CN"), ("zh-hant", "zh_CN"), ("zh", "zh_CN"), ("ru", "zh_CN"), ("eo", "zh_CN"), (None, "zh_CN"),
    ("", "zh_CN"),
])
def test_a_telegram_language_code_picks_english_for_en_only(code: str | None, language: str) -> None:
    assert language_of(code) == language


def test_lang_accepts_codes_and_names() -> None:
    assert [choice_of(word) for word in ("en", "English", "zh", "zh-CN", "中文", " ZH_cn ")] == [
        "en", "en", "zh_CN", "zh_CN", "zh_CN", "zh_CN"]
    assert choice_of("fr") is None and choice_of("auto") is None
