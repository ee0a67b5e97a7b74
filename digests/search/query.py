"""The query language: words and "phrases" that must all occur, -word and -"phrase" to exclude.

A query becomes needles, phrases of index tokens (see tokens.py); the store's backends render
them in their own query syntax, so only tokenizer output ever reaches SQL.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from digests.search.tokens import phrase_tokens

MAX_QUERY_CHARS = 200  # a longer query is cut here
MAX_QUERY_WORDS = 12  # positive words (and, separately, excluded ones) beyond these are ignored

_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201d": "\u201d", "\u300c": "\u300d", "\u300e": "\u300f"}


@dataclass(frozen=True, slots=True)
class Needle:
    """One required (or excluded) phrase of tokens; a one-token phrase is a plain word."""

    tokens: tuple[str, ...]
    prefix: bool

    def pattern(self) -> str:
        """What the phrase looks like inside ' ' + derived text + ' '."""
        return " " + " ".join(self.tokens) + ("" if self.prefix else " ")


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """What a search string asks for: words and "phrases" that must all occur, and -excluded ones."""

    text: str
    terms: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    required: tuple[Needle, ...] = field(default=(), repr=False)
    forbidden: tuple[Needle, ...] = field(default=(), repr=False)

    @property
    def is_empty(self) -> bool:
        """Nothing to look for (no word, or only exclusions): such a query finds nothing."""
        return not self.required


def _split_query(text: str) -> Iterable[tuple[str, bool, bool]]:
    """(chunk, quoted, excluded) for each word or quoted phrase of a query."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        excluded = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if excluded:
            i += 1
        close = _QUOTES.get(text[i])
        if close is not None:
            end = text.find(close, i + 1)
            end = n if end < 0 else end
            yield text[i + 1 : end], True, excluded
            i = end + 1
        else:
            end = i
            while end < n and not text[end].isspace():
                end += 1
            yield text[i:end], False, excluded
            i = end


def parse_query(text: str) -> ParsedQuery:
    """The words, phrases and exclusions of a search string; never raises."""
    text = unicodedata.normalize("NFKC", str(text or ""))[:MAX_QUERY_CHARS]
    terms: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    required: list[Needle] = []
    forbidden: list[Needle] = []
    for chunk, quoted, negated in _split_query(text):
        tokens, prefix = phrase_tokens(chunk)
        if not tokens:
            continue
        needle = Needle(tokens, prefix)
        wanted, shown = (forbidden, excluded) if negated else (required, phrases if quoted else terms)
        if needle in wanted or len(wanted) >= MAX_QUERY_WORDS:
            continue
        wanted.append(needle)
        shown.append(chunk.strip())
    return ParsedQuery(text, tuple(terms), tuple(phrases), tuple(excluded), tuple(required), tuple(forbidden))
