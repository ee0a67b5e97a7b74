"""Search tokens: one tokenizer for indexing and for queries.

Chinese has no spaces and users type one- and two-character words, so the index holds a derived
text rather than the raw one. ``index_tokens`` turns a text (NFKC, case-folded) into:

- for a run of CJK characters, one token per character: the bigram starting there, or the
  character alone at the end of the run (谷歌将 -> 谷歌 歌将 将);
- for a Latin, digit or other-script word, the word itself (accents stripped, 40 chars at most).

So every character is the first character of exactly one token, and a query finds:

- a one-character word as a prefix token (芯 -> 芯*: 芯片, 芯, 机芯's 芯 ...);
- a two-character word as one token (谷歌);
- a longer word as the phrase of its bigrams (大语言模型 -> 大语 语言 言模 模型);
- a mixed word or a "quoted phrase" as the phrase of its tokens (谷歌AI -> 谷歌 歌 ai).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from operator import add

MAX_PHRASE_TOKENS = 32
MAX_TITLE_TOKENS = 300
MAX_BODY_TOKENS = 16000  # with the title, below PostgreSQL's 16,383 tsvector positions
MAX_WORD_CHARS = 40

_CJK = (
    "\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3038-\u303c\u3040-\u309f\u30a1-\u30ff"
    "\u3100-\u312f\u3131-\u318e\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
)
_RUNS = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")
_WIDE_PUNCTUATION = re.compile("[\u3000\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff5e]")


def _fold(text: str) -> str:
    # NFKC turns full-width punctuation into ASCII punctuation; either only separates tokens, and
    # so does a space, which spares NFKC its slow path on nearly every Chinese text (a ，is enough).
    return unicodedata.normalize("NFKC", _WIDE_PUNCTUATION.sub(" ", text)).casefold()


def _plain_word(word: str) -> str:
    if not word.isascii():
        word = "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))
        word = unicodedata.normalize("NFC", word)
    return word[:MAX_WORD_CHARS]


def _runs(text: str) -> Iterable[tuple[str, bool]]:
    """(run, is_cjk) for each CJK run and each other word of an already folded text."""
    for match in _RUNS.finditer(text):
        cjk, word = match.groups()
        if cjk:
            yield cjk, True
        else:
            word = _plain_word(word)
            if word:
                yield word, False


def index_tokens(text: str, limit: int = MAX_BODY_TOKENS) -> list[str]:
    """The tokens a text is indexed as, in order (at most limit of them)."""
    # What _runs does, inlined: this runs over every field of every item an ingest stores.
    tokens: list[str] = []
    for cjk, word in _RUNS.findall(_fold(text)):
        if cjk:
            tokens += map(add, cjk, cjk[1:])  # the bigram starting at each character ...
            tokens.append(cjk[-1])  # ... and the last one alone
        else:
            word = _plain_word(word)
            if word:
                tokens.append(word)
        if len(tokens) >= limit:
            return tokens[:limit]
    return tokens


def phrase_tokens(text: str) -> tuple[tuple[str, ...], bool]:
    """A query word or phrase as (tokens, last token is a prefix); () when it has no word."""
    runs = list(_runs(_fold(text)))
    tokens: list[str] = []
    prefix = False
    for n, (run, cjk) in enumerate(runs):
        last = n == len(runs) - 1
        if not cjk:
            tokens.append(run)
        elif not last:
            # Followed by more: the index has the run's final single character as a token too.
            tokens.extend(run[i : i + 2] for i in range(len(run)))
        elif len(run) == 1:
            tokens.append(run)
            prefix = True
        else:
            # At the end the text may go on (谷歌 in 谷歌的), so the run's bigrams only.
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    if len(tokens) > MAX_PHRASE_TOKENS:
        return tuple(tokens[:MAX_PHRASE_TOKENS]), False
    return tuple(tokens), prefix
