"""Local folder sources: a rescan reads what changed by size and mtime, removes what was deleted."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from digests.clock import utcnow
from digests.source_config import FetchConfig, SourceConfig
from digests.sources.refresh import Outcome, Refresher
from digests.sources.registry import records, sync_config
from digests.store.db import Database
from tests.feed_server import entries, linuxcn_markdown, rss


def post(number: int, count: int) -> str:
    return linuxcn_markdown(number, entries(f"l{number}", count))


def refresh(db: Database) -> Outcome:
    worker = Refresher(db, FetchConfig())
    try:
        [outcome] = worker.refresh(records(db, ["folder"]))
        return outcome
    finally:
        worker.close()


def live_titles(db: Database) -> set[str]:
    from sqlalchemy import select

    from digests.store.models import Item

    with db.session() as session:
        return set(session.scalars(select(Item.title).where(Item.removed.is_(False))))


def test_a_rescan_reads_only_what_changed(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    (folder / "2024").mkdir(parents=True)
    for n in range(30):
        (folder / "2024" / f"{n}.md").write_text(post(n, 1), encoding="utf-8")
    (folder / "feed.xml").write_text(rss("F", entries("f", 2)), encoding="utf-8")
    (folder / ".hidden.md").write_text(post(99, 1), encoding="utf-8")
    sync_config(db, [SourceConfig(name="folder", path=str(folder), interval="every 5m", tags=["本地"])], utcnow())

    first = refresh(db)
    assert first.report is not None and (first.report.documents_new, first.items_added) == (31, 32)
    nothing = refresh(db)
    assert (nothing.status, nothing.report) == ("unchanged", None)  # no file read at all

    touched = folder / "2024" / "1.md"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    (folder / "2024" / "2.md").write_text(post(2, 3), encoding="utf-8")
    (folder / "2024" / "3.md").unlink()
    again = refresh(db)
    report = again.report
    assert report is not None
    # 1.md touched: read and hashed, not parsed; 2.md changed; nothing else read.
    assert (report.documents_unchanged, report.documents_updated, report.documents_new) == (1, 1, 0)
    assert (again.items_added, again.removed) == (2, 1)
    titles = live_titles(db)
    assert "l3 新闻 0" not in titles and {"l2 新闻 2", "f 新闻 1"} <= titles


def test_tags_are_added_to_every_item(sqlite_db: Database, tmp_path: Path) -> None:
    from sqlalchemy import select

    from digests.store.models import Item

    (tmp_path / "a.md").write_text(post(1, 2), encoding="utf-8")
    sync_config(sqlite_db, [SourceConfig(name="folder", path=str(tmp_path / "a.md"), tags=["本地", "archive"])],
                utcnow())
    refresh(sqlite_db)
    with sqlite_db.session() as session:
        tags = list(session.scalars(select(Item.tags)))
    assert tags and all({"本地", "archive"} <= set(t) for t in tags)


def test_a_vanished_folder_is_an_error_not_a_deletion(sqlite_db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "mnt"
    folder.mkdir()
    (folder / "a.md").write_text(post(1, 2), encoding="utf-8")
    sync_config(sqlite_db, [SourceConfig(name="folder", path=str(folder))], utcnow())
    refresh(sqlite_db)
    (folder / "a.md").rename(tmp_path / "a.md")
    folder.rmdir()
    outcome = refresh(sqlite_db)
    assert (outcome.status, outcome.error) == ("failed", f"{folder}: no such file or directory")
    assert len(live_titles(sqlite_db)) == 2


def test_a_deleted_archive_takes_its_members_with_it(sqlite_db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    with zipfile.ZipFile(folder / "bundle.zip", "w") as bundle:
        bundle.writestr("x.md", post(1, 2))
        bundle.writestr("y.md", post(2, 1))
    (folder / "keep.md").write_text(post(3, 1), encoding="utf-8")
    sync_config(sqlite_db, [SourceConfig(name="folder", path=str(folder))], utcnow())
    assert refresh(sqlite_db).items_added == 4
    (folder / "bundle.zip").unlink()
    outcome = refresh(sqlite_db)
    assert outcome.removed == 3 and live_titles(sqlite_db) == {"l3 新闻 0"}


def test_links_out_of_a_folder_source_are_reported_and_never_read(sqlite_db: Database, tmp_path: Path) -> None:
    """A folder source reads links as `digestbot ingest FOLDER` does: inside the folder only."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.md"
    secret.write_text(post(7, 1), encoding="utf-8")
    folder = tmp_path / "archive"
    (folder / "2024").mkdir(parents=True)
    (folder / "2024" / "a.md").write_text(post(1, 1), encoding="utf-8")
    (folder / "latest.md").symlink_to("2024/a.md")  # inside: read, under its own name
    (folder / "secret.md").symlink_to(secret)
    (folder / "elsewhere").symlink_to(outside, target_is_directory=True)
    sync_config(sqlite_db, [SourceConfig(name="folder", path=str(folder))], utcnow())
    outcome = refresh(sqlite_db)
    assert outcome.status == "partial" and outcome.report is not None
    assert sorted(outcome.report.failures) == [
        (str(folder / "elsewhere"), f"symlink points outside the archive: {outside}"),
        (str(folder / "secret.md"), f"symlink points outside the archive: {secret}"),
    ]
    assert (outcome.report.documents_new, outcome.items_added, outcome.report.items_duplicate) == (2, 1, 1)
    assert live_titles(sqlite_db) == {"l1 新闻 0"}


def test_ingest_without_arguments_reads_archive_paths_and_every_source(tmp_path: Path, monkeypatch: Any,
                                                                        capsys: Any) -> None:
    import json

    import yaml

    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "a.md").write_text(post(1, 2), encoding="utf-8")
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "b.md").write_text(post(2, 1), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'cli.db'}"},
        "archive": {"paths": [str(tmp_path / "archive")]},
        "sources": [{"name": "incoming", "path": str(tmp_path / "incoming")},
                    {"name": "off", "path": str(tmp_path / "nowhere"), "enabled": False}],
    }), encoding="utf-8")
    assert main(["--config", str(config), "ingest", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"]["new"] == 2  # archive.paths, as before
    assert [(s["name"], s["status"], s["items_added"]) for s in summary["sources"]] == [("incoming", "ok", 1)]
