"""Migrations: a database from before search upgrades to a working index, and no migration runs
project code (so an old migration never changes with today's)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from bot.cli import main
from digests.store import Database, open_database
from digests.store.db import MIGRATIONS
from digests.store.models import Item
from digests.store.search import search_items


def _database_at_0001_with_items(url: str) -> None:
    """The schema as it was before search, holding one live and one removed item."""
    db = Database(url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
        with db.session() as session:
            for n, (title, removed) in enumerate((("升级之前的条目", False), ("升级之前删掉的条目", True)), 1):
                session.add(
                    Item(
                        fingerprint=f"fp-{n}",
                        title=title,
                        url=f"https://example.com/{n}",
                        summary="早就存好的正文",
                        published_at=datetime(2023, 3, n, tzinfo=UTC),
                        removed=removed,
                    )
                )
    finally:
        db.dispose()


def _titles(db: Database, query: str) -> list[str]:
    with db.session() as session:
        return [item.title for item in search_items(session, query, limit=10).results]


def test_opening_a_database_from_before_search_indexes_its_items(db_url: str) -> None:
    _database_at_0001_with_items(db_url)
    db = open_database(db_url)
    try:
        assert db.current_revision() == db.head_revision()
        assert _titles(db, "升级") == ["升级之前的条目"]
        assert _titles(db, "正文") == ["升级之前的条目"]
        if db.dialect == "sqlite":
            with db.session() as session:
                session.execute(text("INSERT INTO search_fts (search_fts, rank) VALUES ('integrity-check', 1)"))
        reopened = open_database(db_url)  # at head: nothing migrates, nothing is indexed twice
        assert _titles(reopened, "升级") == ["升级之前的条目"]
        reopened.dispose()
    finally:
        db.dispose()


def test_cli_db_upgrade_then_reindex(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _database_at_0001_with_items(db_url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", db_url)
    assert main(["db", "upgrade"]) == 0
    assert f"is at revision {Database(db_url).head_revision()}" in capsys.readouterr().out
    assert main(["db", "reindex"]) == 0
    assert "search index rebuilt: 1 items" in capsys.readouterr().out
    db = open_database(db_url)
    try:
        assert _titles(db, "之前") == ["升级之前的条目"]
    finally:
        db.dispose()


def test_no_migration_imports_project_code() -> None:
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            assert not [m for m in modules if m.split(".")[0] in ("digests", "bot")], (path.name, modules)
