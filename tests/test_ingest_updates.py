"""Changed documents are updated in batches: one transaction for many, the same rows and search
entries as one at a time, and a document the database refuses lost alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import event, select, text

from digests.ingest.pipeline import ingest
from digests.store.db import Database
from digests.store.models import Item
from digests.store.search import search_items
from tests.test_ingest import COLUMN


def column(number: int, *titles: str) -> str:
    """A linux.cn 硬核观察 column of these stories (each its own source link), numbered apart."""
    head = COLUMN.split("### ")[0].replace("99001", str(90_000 + number))
    stories = [f"### {title}\n\n{title}的正文。\n\n> **[消息来源：示例日报](https://news.example.com/{quote(title)})**\n\n"
               f"> 老王点评：{title}的点评。\n" for title in titles]
    return head + "\n".join(stories)


def write_columns(folder: Path, stories: dict[int, tuple[str, ...]]) -> None:
    for number, titles in stories.items():
        (folder / f"{number:03d}.md").write_text(column(number, *titles), encoding="utf-8")


def live_titles(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(Item.title).where(Item.removed.is_(False))))


def searched(db: Database, query: str) -> list[str]:
    with db.session() as session:
        return sorted(item.title for item in search_items(session, query, limit=50).results)


def commits(db: Database) -> list[int]:
    """A counter of the transactions committed from now on."""
    count = [0]

    def committed(_connection: Any) -> None:
        count[0] += 1

    event.listen(db.engine, "commit", committed)
    return count


def test_changed_documents_are_updated_in_one_transaction(db: Database, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    write_columns(archive, {n: (f"旧闻甲{n}", f"旧闻乙{n}") for n in range(20)})
    assert ingest(db, [archive]).items_new == 40

    write_columns(archive, {n: (f"旧闻甲{n}", f"新闻丙{n}") for n in range(10)})
    committed = commits(db)
    report = ingest(db, [archive])
    # Read them all, write what changed: the lookup and the writes, not a transaction a document.
    assert committed[0] <= 2
    assert (report.documents_updated, report.documents_unchanged) == (10, 10)
    assert (report.items_new, report.items_unchanged, report.items_removed) == (10, 10, 10)
    assert live_titles(db) == sorted([f"旧闻甲{n}" for n in range(20)] + [f"旧闻乙{n}" for n in range(10, 20)]
                                     + [f"新闻丙{n}" for n in range(10)])
    assert searched(db, "新闻丙") == sorted(f"新闻丙{n}" for n in range(10))
    assert searched(db, "旧闻乙") == sorted(f"旧闻乙{n}" for n in range(10, 20))


def test_a_story_one_document_drops_and_another_takes_stays_searchable(db: Database, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    write_columns(archive, {1: ("漂泊的新闻", "第一篇的另一条"), 2: ("第二篇的一条", "第二篇的另一条")})
    ingest(db, [archive])
    # In one batch: document 1 lets the story go, document 2 (written after it) takes it up.
    write_columns(archive, {1: ("第一篇换了新闻", "第一篇的另一条"), 2: ("第二篇的一条", "第二篇的另一条", "漂泊的新闻")})
    report = ingest(db, [archive])
    assert report.documents_updated == 2 and report.items_duplicate == 1
    assert live_titles(db) == sorted(["第一篇换了新闻", "第一篇的另一条", "第二篇的一条", "第二篇的另一条", "漂泊的新闻"])
    assert searched(db, "漂泊") == ["漂泊的新闻"]


def test_a_changed_document_the_database_refuses_is_lost_alone(sqlite_db: Database, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    write_columns(archive, {n: (f"原来的甲{n}", f"原来的乙{n}") for n in range(3)})
    ingest(sqlite_db, [archive])
    with sqlite_db.session() as session:  # the database itself refuses one title
        session.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON items WHEN NEW.title = '拒收的新闻' "
                             "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))

    write_columns(archive, {0: ("原来的甲0", "改过的乙0"), 1: ("原来的甲1", "拒收的新闻"), 2: ("原来的甲2", "改过的乙2")})
    report = ingest(sqlite_db, [archive])
    assert (report.documents_updated, report.documents_failed) == (2, 1)
    [(path, reason)] = report.failures
    assert path.endswith("001.md") and reason.startswith("could not be stored: ") and "refused by the test" in reason
    # The other two are written; the refused one keeps what it had, nothing of it half-written.
    assert live_titles(sqlite_db) == sorted(["原来的甲0", "改过的乙0", "原来的甲1", "原来的乙1", "原来的甲2", "改过的乙2"])
    assert searched(sqlite_db, "改过") == ["改过的乙0", "改过的乙2"]
    assert searched(sqlite_db, "原来的乙") == ["原来的乙1"]
