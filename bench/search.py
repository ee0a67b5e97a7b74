"""Search latency at 100,000 and 1,000,000 items on SQLite and PostgreSQL, against a LIKE scan.

    .venv/bin/python bench/search.py                       # 100k and 1M on SQLite (+ PG if PG_URL)
    .venv/bin/python bench/search.py --sizes 100000 --backends sqlite postgresql \\
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The archive is the real one (../shared/seeds and ../shared/corpus, ingested normally), multiplied
up to the size: each extra item is a random real item with a new id, a new publication time
(spread over 2012-2025) and four random characters (drawn from the corpus's own character
frequencies) added to its summary, so every word keeps its real frequency and rare words exist.
The extra rows go straight into the tables in id and key order (their index rows are built with
digests.search's own functions, and a sample is checked against search_doc), so 1M items load in
minutes. Each query is run against search_items (limit 5, a whole session each time) and against
the LIKE scan an unindexed search would do (AND of the words over title, summary and commentary,
newest first); the report gives p50/p95/p99 per class of word frequency and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import JSON, create_engine, select, text  # noqa: E402

from digests.ingest.pipeline import ingest  # noqa: E402
from digests.search.entries import recency_key, search_doc  # noqa: E402
from digests.search.query import parse_query  # noqa: E402
from digests.search.rank import RANK_WINDOW  # noqa: E402
from digests.search.tokens import MAX_TITLE_TOKENS, index_tokens  # noqa: E402
from digests.store import Database, open_database, search_postgres  # noqa: E402
from digests.store.db import normalise_url  # noqa: E402
from digests.store.models import Item  # noqa: E402
from digests.store.search import search_items  # noqa: E402

SHARED = ROOT.parent / "shared"
START = datetime(2012, 1, 1, tzinfo=UTC).timestamp()
END = datetime(2025, 12, 31, tzinfo=UTC).timestamp()
CHUNK = 20_000
FRAGMENT = 4  # random characters added to each extra item
# The LIKE scan reads newest first along an index, as the channel listings do.
ORDER = "sort_at DESC, id DESC" if "sort_at" in Item.__table__.columns else "published_at DESC, id DESC"

# (query, offset); the class comes from how often the query matches the real archive.
QUERIES: list[tuple[str, int]] = [
    ("谷歌", 0),
    ("开源", 0),
    ("linux", 0),
    ("Linux", 5),
    ("的", 0),
    ("的", 100),
    ("开源", 150),
    ("谷", 0),
    ("芯", 0),
    ("芯片", 0),
    ("GAN", 0),
    ("gpt", 0),
    ("微软", 0),
    ("安全", 0),
    ("浏览器", 0),
    ("数据库", 0),
    ("python", 0),
    ("大语言模型", 0),
    ('"开源软件"', 0),
    ("谷歌 AI", 0),
    ("linux 内核", 0),
    ("linux -内核", 0),
    ("开源 的", 0),
    ("苹果 芯片", 0),
    ("量子", 0),
    ("特斯拉", 0),
    ("树莓派", 0),
    ("专利", 0),
    ("Petals", 0),
    ("Torvalds", 0),
    ("zyxwvut", 0),
    ("不存在的词语组合", 0),
]


@dataclass
class Base:
    """A real item and its index text, precomputed once."""

    item: dict[str, object]
    title: str
    summary: str  # tokens of the summary
    rest: str  # tokens of commentary, source and tags
    title_lexemes: dict[str, list[str]]
    summary_lexemes: dict[str, list[str]]
    rest_lexemes: dict[str, list[str]]  # positions already shifted past the fragment's slot


def _lexemes(tokens: list[str], start: int, weight: str = "") -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pos, token in enumerate(tokens, start=start):
        found.setdefault(token, []).append(f"{pos}{weight}")
    return found


def _literal(*parts: dict[str, list[str]]) -> str:
    merged: dict[str, list[str]] = {}
    for part in parts:
        for token, places in part.items():
            merged.setdefault(token, []).extend(places)
    return " ".join(
        "'" + t.replace("\\", "\\\\").replace("'", "''") + "':" + ",".join(p[:256]) for t, p in merged.items()
    )


def load_bases(db: Database) -> list[Base]:
    bases = []
    with db.session() as session:
        for item in session.scalars(select(Item).where(Item.removed.is_(False)).order_by(Item.id)):
            title = index_tokens(item.title, MAX_TITLE_TOKENS)
            summary = index_tokens(item.summary)
            rest: list[str] = []
            for part in (item.commentary, item.source, " ".join(map(str, item.tags or []))):
                if part:
                    rest += index_tokens(part)
            body_start = len(title) + 2
            fields = {
                name: getattr(item, name)
                for name in (
                    "title",
                    "url",
                    "summary",
                    "commentary",
                    "source",
                    "tags",
                    "category",
                    "kind",
                    "author",
                    "image",
                )
            }
            bases.append(
                Base(
                    fields,
                    " ".join(title),
                    " ".join(summary),
                    " ".join(rest),
                    _lexemes(title, 1, "A"),
                    _lexemes(summary, body_start),
                    _lexemes(rest, body_start + len(summary) + FRAGMENT),
                )
            )
    return bases


def corpus_characters(bases: list[Base]) -> list[str]:
    chars = [ch for base in bases for ch in str(base.item["summary"]) if "\u4e00" <= ch <= "\u9fff"]
    return chars or list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动")


@dataclass
class Row:
    id: int
    key: int
    base: Base
    published: datetime
    fragment: str

    @property
    def summary_text(self) -> str:
        return f"{self.base.item['summary']}。{self.fragment}"

    def body(self) -> str:
        return " ".join(
            part
            for part in (self.base.summary, " ".join(index_tokens(self.fragment)), self.base.rest)
            if part
        )

    def tsvector(self) -> str:
        start = len(self.base.title.split()) + 2 + len(self.base.summary.split())
        fragment = _lexemes(index_tokens(self.fragment), start)
        return _literal(self.base.title_lexemes, self.base.summary_lexemes, fragment, self.base.rest_lexemes)


def generate(
    bases: list[Base], chars: list[str], first_id: int, count: int, seed: int
) -> Iterator[list[Row]]:
    """count extra rows in chunks, ids and publication times both increasing (so keys increase)."""
    rng = random.Random(seed)
    span = (END - START) / max(1, count)
    chunk: list[Row] = []
    for n in range(count):
        published = datetime.fromtimestamp(int(START + (n + rng.random()) * span), UTC)
        item_id = first_id + n
        fragment = "".join(rng.choice(chars) for _ in range(FRAGMENT))
        chunk.append(
            Row(item_id, recency_key(published, item_id), rng.choice(bases), published, fragment)
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_sample(rows: list[Row]) -> None:
    """The fast path builds exactly what search_doc builds for the same item."""
    for row in rows[:: max(1, len(rows) // 50)]:
        item = Item(id=row.id, published_at=row.published, **{**row.base.item, "summary": row.summary_text})  # type: ignore[arg-type]
        doc = search_doc(item)
        assert (doc.key, doc.title, doc.body) == (row.key, row.base.title, row.body()), row.id
        assert sorted(search_postgres.tsvector(doc).split()) == sorted(_normalised(row.tsvector())), row.id


def _normalised(literal: str) -> list[str]:
    merged: dict[str, list[str]] = {}
    for part in literal.split():
        token, places = part.rsplit(":", 1)
        merged.setdefault(token, []).extend(places.split(","))
    return [f"{t}:{','.join(sorted(p, key=lambda s: int(s.rstrip('A'))))}" for t, p in merged.items()]


def _item_rows(chunk: list[Row], now: datetime, dialect: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """The items table's columns and the chunk's values for them, defaults filled from the model."""
    columns = list(Item.__table__.columns)
    rows = []
    for row in chunk:
        item = row.base.item
        values: dict[str, object] = {
            **item,
            "id": row.id,
            "fingerprint": f"bench-{row.id}",
            "url": f"{item['url']}#b{row.id}",
            "summary": row.summary_text,
            "published_at": row.published,
            "sort_at": row.published,
            "created_at": now,
            "updated_at": now,
            "format": "bench",
            "removed": False,
            "document_id": None,
        }
        out = []
        for column in columns:
            if column.name in values:
                value = values[column.name]
            elif column.default is not None and getattr(column.default, "is_callable", False):
                value = column.default.arg(None)  # type: ignore[attr-defined]
            else:
                value = getattr(column.default, "arg", None)
            if isinstance(column.type, JSON):
                value = json.dumps(value)
            elif isinstance(value, datetime) and dialect == "sqlite":
                value = value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            elif isinstance(value, bool) and dialect == "sqlite":
                value = int(value)
            out.append(value)
        rows.append(tuple(out))
    return [column.name for column in columns], rows


def load_sqlite(db: Database, rows: Iterator[list[Row]], progress: Callable[[int], None]) -> None:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA cache_size=-400000")
        cur.execute("INSERT INTO search_fts (search_fts, rank) VALUES ('hashsize', 67108864)")
        now = datetime.now(UTC)
        for chunk in rows:
            names, values = _item_rows(chunk, now, "sqlite")
            cur.executemany(
                f"INSERT INTO items ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values
            )
            cur.executemany(
                "INSERT INTO search_docs (key, item_id, title, body) VALUES (?,?,?,?)",
                [(row.key, row.id, row.base.title, row.body()) for row in chunk],
            )
            raw.commit()
            progress(len(chunk))
        cur.execute("INSERT INTO search_fts (search_fts, rank) VALUES ('hashsize', 1048576)")
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def load_postgres(db: Database, rows: Iterator[list[Row]], progress: Callable[[int], None]) -> None:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("ALTER TABLE search_docs DROP CONSTRAINT search_docs_item_id_fkey")
        cur.execute("ALTER TABLE search_texts DROP CONSTRAINT search_texts_item_id_fkey")
        cur.execute("DROP INDEX ix_search_docs_tsv")
        cur.execute("DROP INDEX ix_search_docs_key")
        raw.commit()
        now = datetime.now(UTC)
        for chunk in rows:
            names, values = _item_rows(chunk, now, "postgresql")
            with cur.copy(f"COPY items ({', '.join(names)}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
            with cur.copy("COPY search_docs (item_id, key, tsv) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row((row.id, row.key, row.tsvector()))
            with cur.copy("COPY search_texts (item_id, title, body) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row((row.id, row.base.title, row.body()))
            raw.commit()
            progress(len(chunk))
        cur.execute("SELECT setval(pg_get_serial_sequence('items', 'id'), (SELECT max(id) FROM items))")
        cur.execute("CREATE UNIQUE INDEX ix_search_docs_key ON search_docs (key)")
        cur.execute("CREATE INDEX ix_search_docs_tsv ON search_docs USING gin (tsv) WITH (fastupdate = off)")
        cur.execute(
            "ALTER TABLE search_docs ADD CONSTRAINT search_docs_item_id_fkey "
            "FOREIGN KEY (item_id) REFERENCES items (id) ON DELETE CASCADE"
        )
        cur.execute(
            "ALTER TABLE search_texts ADD CONSTRAINT search_texts_item_id_fkey "
            "FOREIGN KEY (item_id) REFERENCES items (id) ON DELETE CASCADE"
        )
        raw.commit()
        raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        cur.execute("VACUUM ANALYZE items")
        cur.execute("VACUUM ANALYZE search_docs")
        cur.execute("VACUUM ANALYZE search_texts")
        raw.driver_connection.autocommit = False  # type: ignore[union-attr]
    finally:
        raw.close()


# ---------------------------------------------------------------------------------------------
# Measuring


def like_scan(session, query: str, dialect: str, *, ranked: bool) -> list[int]:
    """Search without an index: LIKE over the text columns, AND of the words.

    Newest first (ranked=False) stops at the fifth match; ranked=True puts title matches first,
    the least ranking a search must do, and so reads every match.
    """
    parsed = parse_query(query)
    op = "ILIKE" if dialect == "postgresql" else "LIKE"
    clauses, in_title, params = ["removed = false"], [], {}
    for n, (word, negate) in enumerate(
        [(w, False) for w in (*parsed.terms, *parsed.phrases)] + [(w, True) for w in parsed.excluded]
    ):
        params[f"p{n}"] = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        match = " OR ".join(f"{col} {op} :p{n} ESCAPE '\\'" for col in ("title", "summary", "commentary"))
        clauses.append(f"{'NOT ' if negate else ''}({match})")
        if not negate:
            in_title.append(f"(CASE WHEN title {op} :p{n} ESCAPE '\\' THEN 1 ELSE 0 END)")
    if not in_title:
        return []
    order = f"{' + '.join(in_title)} DESC, {ORDER}" if ranked else ORDER
    sql = f"SELECT id FROM items WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT 5"
    return [row[0] for row in session.execute(text(sql), params)]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def classify(total: int | None, share: float) -> str:
    """The class of a query by how many items it matches: exactly (total) or as a share of all."""
    if total is not None:
        return "rare (<=100 matches)"
    if share < 0.02:
        return "uncommon (<2%)"
    if share < 0.10:
        return "common (2-10%)"
    return "very common (>10%)"


def measure(
    db: Database, size: int, base_share: dict[str, float], rare: list[str], repeat: int, like_repeat: int
) -> dict[str, object]:
    dialect = db.dialect
    queries = [*QUERIES, *((q, 0) for q in rare)]
    rows = []
    for query, offset in queries:
        with db.session() as session:  # warm-up, and the match count for the report
            page = search_items(session, query, limit=5, offset=offset)
        share = base_share.get(query) or 0.0
        cls = classify(page.total, share)
        if page.total is not None:
            matches = str(page.total)
        else:
            matches = f"~{share * size:,.0f}" if share else f">{RANK_WINDOW}"
        samples = []
        for _ in range(repeat):
            with db.session() as session:
                ms, _ = timed(
                    lambda s=session, q=query, o=offset: search_items(s, q, limit=5, offset=o)
                )
            samples.append(ms)
        like: dict[str, list[float]] = {"newest": [], "ranked": []}
        if offset == 0:
            for kind in like:
                for _ in range(like_repeat):
                    with db.session() as session:
                        ms, _ = timed(
                            lambda s=session, q=query, r=kind == "ranked": like_scan(s, q, dialect, ranked=r)
                        )
                    like[kind].append(ms)
        rows.append(
            {
                "query": query,
                "offset": offset,
                "class": cls,
                "matches": matches,
                "fts_ms": samples,
                "like_newest_ms": like["newest"],
                "like_ranked_ms": like["ranked"],
            }
        )
        print(
            f"    {query!r:>18} +{offset:<4} {cls:<21} {matches:>9}  search p50 {statistics.median(samples):7.2f} "
            f"max {max(samples):7.2f}"
            + (
                f"   LIKE {statistics.median(like['newest']):8.1f} "
                f"LIKE+rank {statistics.median(like['ranked']):8.1f}"
                if like["newest"]
                else ""
            ),
            flush=True,
        )
    return {"size": size, "dialect": dialect, "queries": rows}


def report(result: dict[str, object]) -> None:
    rows = result["queries"]
    assert isinstance(rows, list)
    print(
        f"\n  {result['dialect']} at {result['size']:,} items, ms; xN = LIKE time / search time at that percentile"
    )
    print(
        f"  {'class':<22}{'n':>5}{'p50':>8}{'p95':>8}{'p99':>8} |{'LIKE p50':>9}{'p95':>8}{'x p50':>7}{'x p95':>7}"
        f" |{'LIKE+rank p50':>14}{'p95':>8}{'x p50':>7}{'x p95':>7}"
    )
    for cls in [*sorted({row["class"] for row in rows}), "all"]:
        picked = [row for row in rows if cls in ("all", row["class"])]
        fts = [ms for row in picked for ms in row["fts_ms"]]
        line = f"  {cls:<22}{len(fts):>5}{percentile(fts, 50):8.2f}{percentile(fts, 95):8.2f}{percentile(fts, 99):8.2f}"
        for kind, width in (("like_newest_ms", 9), ("like_ranked_ms", 14)):
            like = [ms for row in picked for ms in row[kind]]
            if like:
                line += (
                    f" |{percentile(like, 50):{width}.1f}{percentile(like, 95):8.1f}"
                    f"{percentile(like, 50) / percentile(fts, 50):7.1f}{percentile(like, 95) / percentile(fts, 95):7.1f}"
                )
        print(line)


# ---------------------------------------------------------------------------------------------


def fresh_url(backend: str, size: int, workdir: Path, pg_url: str | None) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        path = workdir / f"search-bench-{size}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

        def drop_file() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return f"sqlite:///{path}", drop_file
    if not pg_url:
        raise SystemExit("--pg-url (or PG_URL) is needed for postgresql")
    base = normalise_url(pg_url)
    schema = f"bench_{size}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()

    def drop_schema() -> None:
        eng = create_engine(base)
        with eng.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()

    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", drop_schema


def run(backend: str, size: int, args: argparse.Namespace) -> dict[str, object]:
    url, drop = fresh_url(backend, size, args.workdir, args.pg_url)
    db = open_database(url)
    try:
        started = time.perf_counter()
        ingest(db, [SHARED / "seeds", SHARED / "corpus"])
        bases = load_bases(db)
        base_share = {}
        with db.session() as session:
            for query, _ in QUERIES:  # every match of the real archive (a few hundred items)
                found = search_items(session, query, limit=len(bases)).results
                base_share[query] = len(found) / len(bases)
            first_id = (session.scalar(select(Item.id).order_by(Item.id.desc()).limit(1)) or 0) + 1
        chars = corpus_characters(bases)
        extra = max(0, size - len(bases))
        rare: list[str] = []
        done = [0]

        def rows() -> Iterator[list[Row]]:
            for chunk in generate(bases, chars, first_id, extra, args.seed):
                if len(rare) < 12:
                    fragment = chunk[len(chunk) // 2].fragment
                    rare.extend([fragment, fragment[1:3]])
                if done[0] == 0:
                    check_sample(chunk)
                yield chunk

        def progress(n: int) -> None:
            done[0] += n
            if done[0] % 200_000 < CHUNK or done[0] == extra:
                print(
                    f"    loaded {done[0]:,}/{extra:,} in {time.perf_counter() - started:.0f} s", flush=True
                )

        print(f"  {backend} {size:,}: {len(bases)} real items, adding {extra:,}", flush=True)
        (load_postgres if db.dialect == "postgresql" else load_sqlite)(db, rows(), progress)
        load_s = time.perf_counter() - started
        size_mb = index_megabytes(db)
        print(f"    loaded in {load_s:.0f} s; search index {size_mb:,.0f} MB", flush=True)
        result = measure(db, size, base_share, rare, args.repeat, args.like_repeat)
        result.update(load_seconds=round(load_s), index_mb=round(size_mb))
        report(result)
        return result
    finally:
        db.dispose()
        if not args.keep:
            drop()


def index_megabytes(db: Database) -> float:
    with db.session() as session:
        if db.dialect == "postgresql":
            return (
                float(
                    session.scalar(
                        text(
                            "SELECT pg_total_relation_size('search_docs') + pg_total_relation_size('search_texts')"
                        )
                    )
                    or 0
                )
                / 1e6
            )
        pages = session.execute(
            text(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'search%' OR name LIKE 'sqlite_autoindex_search%'"
            )
        ).scalar()
        return float(pages or 0) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--backends", nargs="+", default=None, choices=["sqlite", "postgresql"])
    parser.add_argument("--pg-url", default=os.environ.get("PG_URL") or os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each query")
    parser.add_argument("--like-repeat", type=int, default=1, help="timed runs of each LIKE scan")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args()
    if not (SHARED / "seeds").is_dir():
        raise SystemExit(f"{SHARED} is needed (the real archive to multiply)")
    backends = args.backends or (["sqlite", "postgresql"] if args.pg_url else ["sqlite"])
    results = [run(backend, size, args) for size in args.sizes for backend in backends]
    print("\nsummary (search p95 must stay under 30 ms)")
    for result in results:
        report(result)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
