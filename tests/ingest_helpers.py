"""What an ingest stored, as plain rows to compare between two ways of ingesting the same files.

Ingest-time stamps are left out (created_at, updated_at, ingested_at, and sort_at of an undated
item, which is its first ingest's time); everything else is kept, ids included.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlalchemy import text

from digests.store.db import Database

_QUERIES = {
    "documents": "SELECT id, path, format, content_hash, size, item_count, error FROM documents ORDER BY id",
    "items": (
        "SELECT id, fingerprint, document_id, title, url, links, summary, commentary, image, source, "
        "published_at, CASE WHEN published_at IS NULL THEN NULL ELSE sort_at END, tags, category, kind, "
        "author, format, removed FROM items ORDER BY id"
    ),
    "item_sources": "SELECT id, item_id, document_id, key FROM item_sources ORDER BY id",
}
_SEARCH = {
    "sqlite": "SELECT item_id, key, title, body FROM search_docs ORDER BY item_id",
    "postgresql": (
        "SELECT d.item_id, d.key, t.title, t.body, CAST(d.tsv AS text) FROM search_docs d "
        "JOIN search_texts t ON t.item_id = d.item_id ORDER BY d.item_id"
    ),
}


def _plain(value: Any) -> Any:
    # JSON columns come back as lists on PostgreSQL and as text on SQLite (raw SQL): compare values.
    if isinstance(value, str) and value[:1] == "[":
        import json

        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def stored_rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every table an ingest writes, as rows in id order (ingest-time stamps left out)."""
    with db.session() as session:
        rows = {name: [tuple(_plain(v) for v in row) for row in session.execute(text(query))]
                for name, query in _QUERIES.items()}
        rows["search"] = [tuple(row) for row in session.execute(text(_SEARCH[db.dialect]))]
    return rows


def rows_digest(rows: dict[str, list[tuple[Any, ...]]]) -> str:
    """A short hash of stored_rows, to print."""
    digest = hashlib.sha256()
    for name in sorted(rows):
        digest.update(name.encode())
        for row in rows[name]:
            digest.update(repr(row).encode())
    return digest.hexdigest()[:16]


def varied_archive(folder: Path, sources: list[Path], count: int) -> None:
    """count documents made from the files in sources, every link made unique (as bench/ingest.py
    does), each file's own shape kept; some left broken on purpose, in a stable order."""
    link = re.compile(r"(https?://[^\s\)\]\"'<>\\]+)")
    texts = [(path.suffix or ".txt", path.read_bytes()) for path in sources]
    for n in range(count):
        suffix, data = texts[n % len(texts)]
        sub = folder / f"{n // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        if n % 97 == 13:
            (sub / f"doc{n:05d}.md").write_bytes(b"\x00\x01binary" * 10)  # a failure among the others
            continue
        try:
            body = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            (sub / f"doc{n:05d}{suffix}").write_bytes(data)
            continue
        body = link.sub(lambda m, n=n: f"{m.group(1)}{'&' if '?' in m.group(1) else '?'}v={n % 41}", body)
        (sub / f"doc{n:05d}{suffix}").write_text(body, encoding="utf-8")
