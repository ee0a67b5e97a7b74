"""Text cut to a budget of UTF-16 units: at a sentence end, else at a word end plus "…"."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

from digests.formatting.telegram_html import utf16_length

ELLIPSIS = "…"

_CJK_STOPS = "。！？"
_CLOSERS = "”’」』）)】》〉»\"'"
_TRAILING_PUNCT = "，、,;；:：（(“‘「『《〈[【-—"
_URL_SPAN = re.compile(r"(?:https?://|www\.)[!-~]+", re.IGNORECASE)
_STOP_RUN = re.compile("[。！？!?.][。！？!?.…]*[" + re.escape(_CLOSERS) + "]*|\n")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Analysis:
    """Where a text may be cut, computed once per text."""

    cum: list[int]  # cum[i]: UTF-16 length of text[:i]
    sentence_ends: list[int]  # sorted cut positions right after a sentence
    word_breaks: list[int]  # sorted cut positions between words (CJK: between characters)
    glued: frozenset[int]  # positions inside a grapheme (before a mark, around a ZWJ ...)
    inside_url: Callable[[int], bool]


@lru_cache(maxsize=512)
def _analyse(text: str) -> _Analysis:
    n = len(text)
    if text.isascii() or max(text) <= "\uffff":
        cum = list(range(n + 1))
    else:
        cum = [0, *accumulate(2 if ord(c) > 0xFFFF else 1 for c in text)]
    inside_url = _inside_spans([m.span() for m in _URL_SPAN.finditer(text)])

    glued: set[int] = set()
    candidates: set[int] = set()
    for m in _NON_ASCII.finditer(text):
        c, i = m.group(), m.start()
        if _joins_previous(c):
            glued.add(i)
        if c == "\u200d":
            glued.add(i + 1)
        if _is_wide(c):
            candidates.update((i, i + 1))
    for m in _WHITESPACE.finditer(text):
        candidates.update(m.span())
    breaks = sorted(p for p in candidates if 0 < p < n and p not in glued and not inside_url(p))

    ends: list[int] = []
    for m in _STOP_RUN.finditer(text):
        i, j = m.span()
        if m.group() == "\n":
            if i > 0 and text[i - 1] != "\n":
                ends.append(i)
            continue
        run = m.group()
        if any(s in run for s in _CJK_STOPS) or j == n or text[j].isspace():
            boundary = True
        else:  # "3.5", "example.com": an English "." needs a space after it; "!"/"?" before CJK is fine
            boundary = "." not in run and _is_wide(text[j])
        if boundary and not inside_url(i):
            ends.append(j)
    return _Analysis(cum, ends, breaks, frozenset(glued), inside_url)


def _inside_spans(spans: list[tuple[int, int]]) -> Callable[[int], bool]:
    """A test "is this position strictly inside one of these sorted, disjoint spans"."""
    starts = [start for start, _ in spans]

    def inside(pos: int) -> bool:
        i = bisect_left(starts, pos) - 1
        return i >= 0 and pos < spans[i][1]

    return inside


def _is_wide(c: str) -> bool:
    return unicodedata.east_asian_width(c) in ("W", "F")


def _joins_previous(c: str) -> bool:
    """True for characters that belong to the preceding one (marks, ZWJ, variation selectors, skin tones)."""
    code = ord(c)
    return (unicodedata.category(c).startswith("M") or code == 0x200D or 0xFE00 <= code <= 0xFE0F
            or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F)


def _with_ellipsis(text: str, pos: int) -> str:
    head = text[:pos].rstrip().rstrip(_TRAILING_PUNCT).rstrip()
    return head + ELLIPSIS if head else ""


def _cut_at_word(text: str, analysis: _Analysis, limit: int) -> str:
    """The longest prefix ending between words that fits ``limit`` with an ellipsis added."""
    last = bisect_right(analysis.cum, limit - 1) - 1  # the furthest cut leaving room for "…"
    breaks = analysis.word_breaks
    for k in range(bisect_right(breaks, last) - 1, -1, -1):
        cut = _with_ellipsis(text, breaks[k])
        if cut:
            return cut
    return ""


def _cut_anywhere(text: str, analysis: _Analysis, limit: int) -> str:
    """Like ``_cut_at_word`` but between any two graphemes outside URLs (for one overlong word)."""
    pos = min(len(text) - 1, bisect_right(analysis.cum, limit - 1) - 1)
    while pos > 0:
        if pos not in analysis.glued and not analysis.inside_url(pos):
            cut = _with_ellipsis(text, pos)
            if cut:
                return cut
        pos -= 1
    return ""


@lru_cache(maxsize=2048)
def shorten(text: str, limit: int, *, hard: bool = False) -> str:
    """``text`` cut to at most ``limit`` UTF-16 units at a sentence end, else at a word end plus "…".

    Sentence ends are 。！？ and ".", "!", "?" followed by a space or the end ("3.5" and
    "example.com" are not). Never cuts inside a word, a URL or a grapheme; with ``hard`` a single
    word too long for ``limit`` is cut at a character instead of giving "".
    """
    if limit <= 0 or not text:
        return ""
    analysis = _analyse(text)
    if analysis.cum[-1] <= limit:
        return text
    best = ""
    ends = analysis.sentence_ends
    fitting = bisect_right(ends, bisect_right(analysis.cum, limit) - 1)
    if fitting:
        best = text[:ends[fitting - 1]]
    best = best.rstrip()
    # A short first sentence loses to a fuller cut at a word: keep at least ~40% of the budget.
    if best and utf16_length(best) * 5 >= limit * 2:
        return best
    cut = _cut_at_word(text, analysis, limit)
    if len(cut) < len(best):
        cut = best
    if not cut and hard:
        cut = _cut_anywhere(text, analysis, limit) or ELLIPSIS
    return cut
