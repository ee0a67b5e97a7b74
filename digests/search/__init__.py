"""Archive search: one tokenizer for indexing and querying; FTS5 on SQLite, tsvector + GIN on PostgreSQL.

Tokens. Chinese has no spaces and users type one- and two-character words, so the index holds a
derived text rather than the raw one. ``index_tokens`` turns a text (NFKC, case-folded) into:

- for a run of CJK characters, one token per character: the bigram starting there, or the
  character alone at the end of the run (谷歌将 -> 谷歌 歌将 将);
- for a Latin, digit or other-script word, the word itself (accents stripped, 40 chars at most).

So every character is the first character of exactly one token, and a query finds:

- a one-character word as a prefix token (芯 -> ``芯*``: 芯片, 芯, 机芯's 芯 ...);
- a two-character word as one token (谷歌);
- a longer word as the phrase of its bigrams (大语言模型 -> 大语 语言 言模 模型);
- a mixed word or a "quoted phrase" as the phrase of its tokens (谷歌AI -> 谷歌 歌 ai).

The database only ever sees space-separated tokens: SQLite's FTS5 with the ``ascii`` tokenizer
(every non-ASCII character is a token character, so it splits exactly where we did) over an
external-content table ``search_docs``; PostgreSQL a ``tsvector`` built from the same tokens as a
literal (positions and title weight A set here, never the text-search parser) with a GIN index.
Several words are ANDed, ``-word`` and ``-"phrase"`` exclude, and only the tokenizer's output ever
reaches SQL (as quoted FTS5 strings or quoted tsquery lexemes), so no user string can change the
shape of a query.

Ranking. Every result contains every positive word (AND), so within a result set the usual
inverse-document-frequency weight only reweights words against each other, while computing it
(FTS5's ``bm25()``) costs a pass over each word's whole posting list (3.4 ms for 的 at 100,000
items, ten times that at a million). The score is therefore computed here, the same on both
databases, from the stored token text of each candidate: first the number of query words found
in the title (a title match ranks above a body-only match), then a BM25F-style saturated term
frequency (title weighted 3:1, length-normalised), then recency (published second, then id).

Common words. Ranking every match of 开源 (one item in nine) at a million items means reading
110,000 rows. Instead the candidates are the newest ``RANK_WINDOW`` matches, found in time order
without touching the others: both indexes are keyed by a recency key (published second, then
item id, in one 63-bit integer), which is the FTS5 rowid (FTS5 walks a posting list backwards
and stops) and a btree column on PostgreSQL (see ``_pg_newest_keys`` for the plan there). If a
query matches at most ``RANK_WINDOW`` items, all of them are ranked and ``total`` is exact;
otherwise the newest ``RANK_WINDOW`` matches are ranked, ``total`` is None ("more than the
window", not counted), and the pages after them go on with the older matches, newest first, so
every match is reachable and paging is stable. The trade-off: for a query that broad, an old
item with the word in its title comes after the ranked window (the first ten pages of five).
For a news archive, recency is the better tie-breaker there than term frequency, and the cost
stays flat from rare to very common words (bench/search.py: p95 under 30 ms at a million
items on both databases).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import add
from typing import Any, Protocol

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from digests.store.models import Item

RANK_WINDOW = 50  # ranked candidates for a query that matches more items than this
MAX_QUERY_CHARS = 200  # a longer query is cut here
MAX_QUERY_WORDS = 12  # positive words (and, separately, excluded ones) beyond these are ignored
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
_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201d": "\u201d", "\u300c": "\u300d", "\u300e": "\u300f"}

_ID_BITS = 31
_ID_MASK = (1 << _ID_BITS) - 1
_KEY_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_KEY = (1 << 63) - 1


# ---------------------------------------------------------------------------------------------
# Tokens


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


def _phrase_tokens(text: str) -> tuple[tuple[str, ...], bool]:
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


# ---------------------------------------------------------------------------------------------
# Queries


@dataclass(frozen=True, slots=True)
class _Needle:
    """One required (or excluded) phrase of tokens; a one-token phrase is a plain word."""

    tokens: tuple[str, ...]
    prefix: bool

    def fts5(self) -> str:
        quoted = '"' + " ".join(self.tokens).replace('"', '""') + '"'
        return quoted + " *" if self.prefix else quoted

    def tsquery(self) -> str:
        lexemes = ["'" + tok.replace("\\", "\\\\").replace("'", "''") + "'" for tok in self.tokens]
        if self.prefix:
            lexemes[-1] += ":*"
        return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"

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
    required: tuple[_Needle, ...] = field(default=(), repr=False)
    forbidden: tuple[_Needle, ...] = field(default=(), repr=False)

    @property
    def is_empty(self) -> bool:
        """Nothing to look for (no word, or only exclusions): such a query finds nothing."""
        return not self.required

    def fts5_match(self) -> str:
        expression = " AND ".join(needle.fts5() for needle in self.required)
        if self.forbidden:
            expression = f"({expression}) NOT ({' OR '.join(n.fts5() for n in self.forbidden)})"
        return expression

    def tsquery(self) -> str:
        parts = [needle.tsquery() for needle in self.required]
        parts += ["!" + needle.tsquery() for needle in self.forbidden]
        return " & ".join(parts)


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
    required: list[_Needle] = []
    forbidden: list[_Needle] = []
    for chunk, quoted, negated in _split_query(text):
        tokens, prefix = _phrase_tokens(chunk)
        if not tokens:
            continue
        needle = _Needle(tokens, prefix)
        wanted, shown = (forbidden, excluded) if negated else (required, phrases if quoted else terms)
        if needle in wanted or len(wanted) >= MAX_QUERY_WORDS:
            continue
        wanted.append(needle)
        shown.append(chunk.strip())
    return ParsedQuery(text, tuple(terms), tuple(phrases), tuple(excluded), tuple(required), tuple(forbidden))


# ---------------------------------------------------------------------------------------------
# Index documents


def recency_key(published_at: datetime | None, item_id: int) -> int:
    """One integer ordered like (published second, item id): the index's row key.

    Seconds are counted from 2000-01-01 UTC and clamped to a signed 32-bit range (1932-2068);
    an item without a date sorts before every dated one.
    """
    if not 0 < item_id <= _ID_MASK:
        raise ValueError(f"item id {item_id} does not fit the search key")
    if published_at is None:
        seconds = -(1 << 31)
    else:
        if published_at.tzinfo is None:  # the store hands out aware times; a naive one is UTC
            published_at = published_at.replace(tzinfo=UTC)
        seconds = int((published_at - _KEY_EPOCH).total_seconds() // 1)
        seconds = max(-(1 << 31) + 1, min((1 << 31) - 1, seconds))
    return ((seconds + (1 << 31)) << _ID_BITS) | item_id


def item_id_of_key(key: int) -> int:
    return key & _ID_MASK


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """An item as the index holds it: its key and its title and body as space-separated tokens."""

    item_id: int
    key: int
    title: str
    body: str

    def tsvector(self) -> str:
        """The PostgreSQL tsvector literal: title lexemes weighted A, body after a gap."""
        positions: dict[str, list[str]] = {}
        title = self.title.split()
        for pos, token in enumerate(title, start=1):
            positions.setdefault(token, []).append(f"{pos}A")
        for pos, token in enumerate(self.body.split(), start=len(title) + 2):
            positions.setdefault(token, []).append(str(pos))
        return " ".join(
            "'" + token.replace("\\", "\\\\").replace("'", "''") + "':" + ",".join(places[:256])
            for token, places in positions.items()
        )


class Indexable(Protocol):
    """What an index entry is made from: an Item, or a row of these columns."""

    id: int
    title: str
    summary: str
    commentary: str
    source: str
    tags: list[Any]
    published_at: datetime | None


class IndexableItem(Indexable, Protocol):
    """What index_items reads: an Item, which says whether it is removed."""

    removed: bool


def search_doc(item: Indexable) -> SearchDoc:
    """The index entry of an item: title, then summary, commentary, source and tags as the body."""
    tags = " ".join(str(tag) for tag in (item.tags or []))
    # One pass over the body fields: no token spans a line break, so joining them changes nothing.
    body = "\n".join(part for part in (item.summary, item.commentary, item.source, tags) if part)
    return SearchDoc(
        item.id,
        recency_key(item.published_at, item.id),
        " ".join(index_tokens(item.title or "", MAX_TITLE_TOKENS)),
        " ".join(index_tokens(body, MAX_BODY_TOKENS)),
    )


# ---------------------------------------------------------------------------------------------
# The two storage back ends


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _chunks(ids: Sequence[int], size: int = 500) -> Iterable[list[int]]:
    """ids in slices small enough for SQLite's limit on bound parameters."""
    ids = list(ids)
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


class _Sqlite:
    """FTS5 over the external-content table search_docs: inserts go to both, triggers do deletes."""

    @staticmethod
    def stored(session: Session, item_ids: Sequence[int]) -> dict[int, tuple[int, str, str]]:
        query = text("SELECT item_id, key, title, body FROM search_docs WHERE item_id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        return {
            row[0]: (row[1], row[2], row[3])
            for chunk in _chunks(item_ids)
            for row in session.execute(query, {"ids": chunk})
        }

    @staticmethod
    def delete(session: Session, item_ids: Sequence[int]) -> None:
        # The delete trigger tells FTS5 which tokens to drop, from the row's stored text.
        query = text("DELETE FROM search_docs WHERE item_id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        for chunk in _chunks(item_ids):
            session.execute(query, {"ids": chunk})

    @staticmethod
    def insert(session: Session, docs: Sequence[SearchDoc]) -> None:
        # The text row and its FTS5 entry in the same transaction, both from here: a trigger would
        # make FTS5 write a segment per row (migration 0003).
        # Straight to the driver: plain ints and strings need none of SQLAlchemy's per-row
        # parameter processing, and an ingest sends two rows per item.
        connection = session.connection()
        connection.exec_driver_sql(
            "INSERT INTO search_docs (key, item_id, title, body) VALUES (?, ?, ?, ?)",
            [(d.key, d.item_id, d.title, d.body) for d in docs],
        )
        connection.exec_driver_sql(
            "INSERT INTO search_fts (rowid, title, body) VALUES (?, ?, ?)", [(d.key, d.title, d.body) for d in docs]
        )

    @staticmethod
    def clear(session: Session) -> None:
        # Row by row through the trigger (a 'delete-all' first would leave the trigger's deletes
        # pointing at nothing), then 'delete-all' drops anything the index held beyond the table.
        session.execute(text("DELETE FROM search_docs"))
        session.execute(text("INSERT INTO search_fts (search_fts) VALUES ('delete-all')"))

    @staticmethod
    def newest_keys(session: Session, query: ParsedQuery, n: int, below: int) -> list[int]:
        rows = session.execute(
            text(
                "SELECT rowid FROM search_fts WHERE search_fts MATCH :match AND rowid < :below "
                "ORDER BY rowid DESC LIMIT :n"
            ),
            {"match": query.fts5_match(), "below": below, "n": n},
        )
        return [row[0] for row in rows]

    @staticmethod
    def newest_texts(session: Session, query: ParsedQuery, n: int) -> list[tuple[int, str, str]]:
        """(key, title, body) of the n newest matches; FTS5 reads the text from search_docs."""
        rows = session.execute(
            text(
                "SELECT rowid, title, body FROM search_fts WHERE search_fts MATCH :match "
                "ORDER BY rowid DESC LIMIT :n"
            ),
            {"match": query.fts5_match(), "n": n},
        )
        return [(row[0], row[1], row[2]) for row in rows]


# PostgreSQL plan for "the newest n matches" (see _pg_newest_keys). Costs in microseconds,
# measured on the benchmark machine; only their ratios matter.
_PG_PROBE_ROWS = 2000  # the newest rows walked first
_PG_WALK_ROW = 1.25  # walking: one row read and its tsvector tested
_PG_GIN_MATCH = {"word": 0.3, "phrase": 1.0, "prefix": 1.2}  # a GIN bitmap, per match
_PG_HEAP_MATCH = 2.5  # reading a matched row for its key
_PG_WINDOW_ROW = 0.012  # the BRIN bitmap of a window, per row in it
_PG_WINDOW_MATCH = 10.0  # a window's heap pages are lossy: every row on them is rechecked
_PG_STEPS = 3  # walks or windows tried before one bitmap scan of everything older


class _Postgres:
    """search_docs (key, GIN tsvector) for matching, search_texts (token text) for ranking."""

    @staticmethod
    def stored(session: Session, item_ids: Sequence[int]) -> dict[int, tuple[int, str, str]]:
        rows = session.execute(
            text(
                "SELECT d.item_id, d.key, t.title, t.body FROM search_docs d "
                "JOIN search_texts t ON t.item_id = d.item_id WHERE d.item_id = ANY(:ids)"
            ),
            {"ids": list(item_ids)},
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    @staticmethod
    def delete(session: Session, item_ids: Sequence[int]) -> None:
        session.execute(text("DELETE FROM search_docs WHERE item_id = ANY(:ids)"), {"ids": list(item_ids)})
        session.execute(text("DELETE FROM search_texts WHERE item_id = ANY(:ids)"), {"ids": list(item_ids)})

    @staticmethod
    def insert(session: Session, docs: Sequence[SearchDoc]) -> None:
        session.execute(
            text(
                "INSERT INTO search_docs (item_id, key, tsv) VALUES (:item_id, :key, CAST(:tsv AS tsvector))"
            ),
            [{"item_id": d.item_id, "key": d.key, "tsv": d.tsvector()} for d in docs],
        )
        session.execute(
            text("INSERT INTO search_texts (item_id, title, body) VALUES (:item_id, :title, :body)"),
            [{"item_id": d.item_id, "title": d.title, "body": d.body} for d in docs],
        )

    @staticmethod
    def clear(session: Session) -> None:
        session.execute(text("DELETE FROM search_docs"))
        session.execute(text("DELETE FROM search_texts"))

    @staticmethod
    def newest_keys(session: Session, query: ParsedQuery, n: int, below: int) -> list[int]:
        return _pg_newest_keys(session, query, n, below)

    @staticmethod
    def newest_texts(session: Session, query: ParsedQuery, n: int) -> list[tuple[int, str, str]]:
        keys = _pg_newest_keys(session, query, n, _MAX_KEY)
        rows = session.execute(
            text("SELECT item_id, title, body FROM search_texts WHERE item_id = ANY(:ids)"),
            {"ids": [item_id_of_key(key) for key in keys]},
        )
        texts = {row[0]: (row[1], row[2]) for row in rows}
        return [(key, *texts.get(item_id_of_key(key), ("", ""))) for key in keys]


def _pg_newest_keys(session: Session, query: ParsedQuery, n: int, below: int) -> list[int]:
    """The keys of the n newest matches with key < below, without reading every match.

    GIN gives every match of a word at once (600,000 for 的 at a million items), unordered, and
    each must then be read from the table for its key. So, going back from the newest row:

    1. Walk the newest _PG_PROBE_ROWS rows in key order (btree), testing each row's tsvector
       with ts_match_vq, which GIN cannot serve, so the plan is always this bounded walk. Enough
       matches (a word in more than ~2.5% of recent items): done.
    2. Otherwise the walk's hit rate estimates the matches left, and a small cost model picks
       the cheapest way on, at most _PG_STEPS times, re-estimating each time: walk on as far
       as the rate says the missing matches are; or a window: the GIN bitmap ANDed with the
       BRIN bitmap of the key range likely to hold 3 times the matches still needed (BRIN on
       key + 0, so that the btree cannot stand in for it; BRIN is cheap per row, and while
       rows are stored roughly in key order, as ingest and rebuild_index store them, only the
       window's heap pages are read); or step 3 at once, when few matches are left.
    3. One GIN bitmap scan for whatever is left (key + 0: GIN only), each match read for its key.

    psycopg prepares a statement run five times, and PostgreSQL may then plan it once for any
    values: a plan that cannot tell a rare word from 的 (or a narrow window from the whole
    table). So plan_cache_mode is force_custom_plan for these statements (and put back after).
    """
    tsquery = query.tsquery()
    floor, newest, rows, plan_mode, _ = session.execute(
        text(
            "SELECT (SELECT key FROM search_docs WHERE key < :below ORDER BY key DESC OFFSET :skip LIMIT 1), "
            "(SELECT max(key) FROM search_docs WHERE key < :below), "
            "(SELECT reltuples FROM pg_class WHERE oid = CAST('search_docs' AS regclass)), "
            "current_setting('plan_cache_mode'), set_config('plan_cache_mode', 'force_custom_plan', true)"
        ),
        {"below": below, "skip": _PG_PROBE_ROWS - 1},
    ).one()
    try:
        return _pg_find(session, query, tsquery, n, below, floor, newest, rows)
    finally:
        session.execute(text("SELECT set_config('plan_cache_mode', :mode, true)"), {"mode": plan_mode})


def _pg_find(
    session: Session,
    query: ParsedQuery,
    tsquery: str,
    n: int,
    below: int,
    floor: int | None,
    newest: int | None,
    rows: float | None,
) -> list[int]:
    keys = _pg_walk(session, tsquery, n, below, floor if floor is not None else -1)
    if len(keys) >= n or floor is None or newest is None:
        return keys
    kind = (
        "prefix"
        if any(needle.prefix for needle in query.required)
        else "phrase"
        if any(len(needle.tokens) > 1 for needle in query.required)
        else "word"
    )
    key_span = max(1, (newest - floor) // _PG_PROBE_ROWS)  # key units per row, recently
    walked, hits, top = _PG_PROBE_ROWS, len(keys), floor
    for _ in range(_PG_STEPS):
        need = n - len(keys)
        rate = (hits + 1) / walked
        matches_left = rate * max(0.0, float(rows or 0) - walked)
        walk = _PG_WALK_ROW * 1.5 * need / rate
        window = (
            matches_left * _PG_GIN_MATCH[kind] + _PG_WINDOW_ROW * 3 * need / rate + _PG_WINDOW_MATCH * need
        )
        if matches_left * (_PG_GIN_MATCH[kind] + _PG_HEAP_MATCH) <= min(walk, window):
            break
        if window < walk:
            span = int(3 * need / rate) + 1
            low = max(top - span * key_span, -1)
            found = _pg_gin_keys(session, tsquery, need, top, low)
        else:
            span = int(1.5 * need / rate) + 1
            low = max(top - span * key_span, -1)
            found = _pg_walk(session, tsquery, need, top, low)
        keys += found
        if len(keys) >= n or low < 0:
            return keys
        walked, hits, top = walked + span, hits + len(found), low
    return keys + _pg_gin_keys(session, tsquery, n - len(keys), top)


def _pg_gin_keys(session: Session, tsquery: str, n: int, top: int, low: int | None = None) -> list[int]:
    """Keys of the newest n matches below top (and from low on) by the GIN index; with a low
    bound, key + 0 lets the BRIN index narrow the heap to that window."""
    params: dict[str, object] = {"q": tsquery, "top": top, "n": n}
    window = ""
    if low is not None:
        window, params["low"] = " AND key + 0 >= :low", low
    rows = session.execute(
        text(
            f"SELECT key FROM search_docs WHERE tsv @@ CAST(:q AS tsquery) AND key + 0 < :top{window} "
            "ORDER BY key + 0 DESC LIMIT :n"
        ),
        params,
    )
    return [row[0] for row in rows]


def _pg_walk(session: Session, tsquery: str, n: int, below: int, floor: int) -> list[int]:
    """Keys of the first n matches walking back from below to floor (inclusive)."""
    return [
        row[0]
        for row in session.execute(
            text(
                "SELECT key FROM search_docs WHERE key < :below AND key >= :floor "
                "AND ts_match_vq(tsv, CAST(:q AS tsquery)) ORDER BY key DESC LIMIT :n"
            ),
            {"below": below, "floor": floor, "q": tsquery, "n": n},
        )
    ]


def _backend(session: Session) -> type[_Sqlite] | type[_Postgres]:
    return _Postgres if _dialect(session) == "postgresql" else _Sqlite


# ---------------------------------------------------------------------------------------------
# Keeping the index in step


def index_items(session: Session, items: Sequence[IndexableItem]) -> None:
    """Add or refresh the search entries of items (removed items are taken out)."""
    backend = _backend(session)
    removed = sorted({item.id for item in items if item.removed})
    docs = {item.id: search_doc(item) for item in items if not item.removed}
    if removed:
        backend.delete(session, removed)
    if not docs:
        return
    stored = backend.stored(session, list(docs))
    changed = [doc for doc in docs.values() if stored.get(doc.item_id) != (doc.key, doc.title, doc.body)]
    if not changed:
        return
    backend.delete(session, [doc.item_id for doc in changed if doc.item_id in stored])
    _insert(session, backend, changed)


def index_new_items(session: Session, items: Sequence[Indexable]) -> None:
    """Index items inserted in this transaction: nothing of theirs is in the index yet."""
    _insert(session, _backend(session), [search_doc(item) for item in items])


def _insert(session: Session, backend: type[_Sqlite] | type[_Postgres], docs: list[SearchDoc]) -> None:
    # In key order: FTS5 flushes its pending terms whenever a rowid goes backwards, and
    # PostgreSQL's BRIN window relies on rows stored roughly in key order.
    backend.insert(session, sorted(docs, key=lambda doc: doc.key))


def unindex_items(session: Session, item_ids: Sequence[int]) -> None:
    """Drop the search entries of items that no document holds any more."""
    if item_ids:
        _backend(session).delete(session, list(item_ids))


def rebuild_index(session: Session, *, batch: int = 2000) -> int:
    """Re-index every item that is not removed; the number indexed."""
    backend = _backend(session)
    backend.clear(session)
    count = 0
    pending: list[SearchDoc] = []
    # In key order, so that PostgreSQL stores rows roughly in key order (its BRIN window relies on
    # it); only the columns indexed, so that migration 0002 can run this on any later model.
    rows = (
        select(Item.id, Item.title, Item.summary, Item.commentary, Item.source, Item.tags, Item.published_at)
        .where(Item.removed.is_(False))
        .order_by(Item.published_at.asc().nulls_first(), Item.id)
        .execution_options(yield_per=batch)
    )
    for row in session.execute(rows):
        pending.append(search_doc(row))
        if len(pending) >= batch:
            _insert(session, backend, pending)
            count += len(pending)
            pending = []
    if pending:
        _insert(session, backend, pending)
        count += len(pending)
    return count


# ---------------------------------------------------------------------------------------------
# Searching

_K1 = 1.2
_B = 0.75
_TITLE_WEIGHT = 3.0


def _ranked(query: ParsedQuery, candidates: Sequence[tuple[int, str, str]]) -> list[int]:
    """Keys best first: query words in the title, then BM25F-style term frequency, then newest."""
    if not candidates:
        return []
    patterns = [needle.pattern() for needle in query.required]
    docs = [(key, f" {title} ", f" {body} ") for key, title, body in candidates]
    mean_title = max(1.0, sum(title.count(" ") - 1 for _, title, _ in docs) / len(docs))
    mean_body = max(1.0, sum(body.count(" ") - 1 for _, _, body in docs) / len(docs))
    order: list[tuple[int, float, int]] = []
    for key, title, body in docs:
        title_norm = 1 - _B + _B * (title.count(" ") - 1) / mean_title
        body_norm = 1 - _B + _B * (body.count(" ") - 1) / mean_body
        hits, score = 0, 0.0
        for pattern in patterns:
            in_title = title.count(pattern)
            hits += in_title > 0
            tf = _TITLE_WEIGHT * in_title / title_norm + body.count(pattern) / body_norm
            score += tf / (_K1 + tf)
        order.append((-hits, -round(score, 9), -key))
    order.sort()
    return [-key for _, _, key in order]


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results, best first.

    ``total`` is the exact number of matches, or None when there are more than RANK_WINDOW
    (they are not counted: that is the cost a common word must not pay).
    """

    results: list[Item]
    total: int | None
    has_more: bool
    query: ParsedQuery

    @property
    def total_at_least(self) -> int:
        return self.total if self.total is not None else RANK_WINDOW + 1


def search_items(session: Session, query: str, *, limit: int = 5, offset: int = 0) -> SearchPage:
    """A page of the items matching query, ranked by relevance, then newest first."""
    parsed = parse_query(query)
    limit, offset = max(0, int(limit)), max(0, int(offset))
    if parsed.is_empty:
        return SearchPage([], 0, False, parsed)
    backend = _backend(session)
    if offset >= RANK_WINDOW:
        # A page past the ranked window: the older matches, newest first; no ranking needed.
        skip = offset - RANK_WINDOW
        older = backend.newest_keys(session, parsed, RANK_WINDOW + skip + limit + 1, _MAX_KEY)
        capped = len(older) > RANK_WINDOW
        keys = older[RANK_WINDOW + skip : RANK_WINDOW + skip + limit]
        total = None if capped else len(older)
        return SearchPage(_items(session, keys), total, len(older) > offset + limit, parsed)
    newest = backend.newest_texts(session, parsed, RANK_WINDOW + 1)
    window = newest[:RANK_WINDOW]
    capped = len(newest) > RANK_WINDOW
    ranked = _ranked(parsed, window)
    keys = ranked[offset : offset + limit]
    has_more = capped or offset + limit < len(ranked)
    if capped and offset + limit > RANK_WINDOW:
        # The page runs past the ranked window: then the older matches, newest first.
        wanted = offset + limit - RANK_WINDOW
        older = backend.newest_keys(session, parsed, wanted + 1, window[-1][0])
        keys += older[:wanted]
        has_more = len(older) > wanted
    return SearchPage(_items(session, keys), None if capped else len(window), has_more, parsed)


def _items(session: Session, keys: Sequence[int]) -> list[Item]:
    ids = [item_id_of_key(key) for key in keys]
    if not ids:
        return []
    found = {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(ids)))}
    return [found[i] for i in ids if i in found and not found[i].removed]
