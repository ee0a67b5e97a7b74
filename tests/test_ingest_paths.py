"""The faster ingest paths store exactly what the old ones store: COPY on PostgreSQL against the
INSERT path, and parsing in worker processes (--jobs 2) against one process, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from digests.ingest import parsing
from digests.ingest.pipeline import IngestReport, ingest
from digests.store import open_database
from tests.conftest import DATA, fresh_postgres_url
from tests.ingest_helpers import stored_rows, varied_archive

# The fixture documents of every format, and the seeds when ../shared is there.
_FIXTURES = sorted(p for p in [*(DATA / "formats").iterdir(), *(DATA / "linuxcn").iterdir()]
                   if not p.name.endswith(".json") or p.name == "rssjson.json")
_SEEDS = sorted((DATA.parent.parent.parent / "shared" / "seeds").glob("*.txt"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two hundred and fifty documents of every format, with duplicates across them and a few
    broken ones; part one and part two, ingested one after the other, so that the second finds
    stored items to deduplicate against."""
    root = tmp_path_factory.mktemp("archive")
    varied_archive(root / "one", [*_FIXTURES, *_SEEDS], 120)
    varied_archive(root / "two", [*_SEEDS, *_FIXTURES], 130)
    return root


def _ingest_twice(url: str, archive: Path, **options: object) -> tuple[list[IngestReport], dict]:
    db = open_database(url)
    try:
        reports = [ingest(db, [archive / "one"], **options), ingest(db, [archive], **options)]  # type: ignore[arg-type]
        return reports, stored_rows(db)
    finally:
        db.dispose()


def _same_reports(a: list[IngestReport], b: list[IngestReport]) -> None:
    assert [r.as_dict() for r in a] == [r.as_dict() for r in b]


def test_archive_exercises_duplicates_and_failures(tmp_path: Path, archive: Path) -> None:
    reports, rows = _ingest_twice(f"sqlite:///{tmp_path / 'a.db'}", archive)
    first, second = reports
    assert first.documents_new == 120 - first.documents_failed and first.documents_failed > 0
    assert second.documents_unchanged == first.documents_new  # a failed document is read again
    assert second.items_duplicate > 0 and second.items_new > 0
    assert len(rows["item_sources"]) > len(rows["items"])
    assert all(reason for _path, reason in second.failures)


def test_copy_stores_what_the_insert_path_stores(postgres_base_url: str, archive: Path) -> None:
    copied, copied_rows = _ingest_twice(fresh_postgres_url(postgres_base_url), archive, copy=True)
    inserted, inserted_rows = _ingest_twice(fresh_postgres_url(postgres_base_url), archive, copy=False)
    _same_reports(copied, inserted)
    for table in ("documents", "items", "item_sources", "search"):
        assert copied_rows[table] == inserted_rows[table], table
    assert copied_rows["search"]  # the tsvectors themselves compared, as the server stored them


def test_copy_batch_large_enough_for_the_bulk_index_searches_alike(postgres_base_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  archive: Path) -> None:
    """A batch past the bulk GIN threshold leaves no pending list and finds what the row path finds."""
    from digests.store import search_postgres
    from digests.store.search import search_items

    monkeypatch.setattr(search_postgres, "_BULK_GIN_ROWS", 10)
    found = []
    for copy in (True, False):
        db = open_database(fresh_postgres_url(postgres_base_url))
        ingest(db, [archive], copy=copy)
        with db.session() as session:
            found.append([[item.id for item in search_items(session, word, limit=50).results]
                          for word in ("开源", "Linux", "微软", "the")])
            options = session.connection().exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE oid = to_regclass('ix_search_docs_tsv')").scalar_one()
        db.dispose()
        assert options == ["fastupdate=off"]
    assert found[0] == found[1] and any(found[0])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_jobs_store_what_one_process_stores(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, archive: Path) -> None:
    monkeypatch.setattr(parsing, "POOL_AFTER", 8)  # the pool takes over well inside part one,
    monkeypatch.setattr(parsing, "_CHUNK", 5)  # with many tasks,
    monkeypatch.setattr(parsing, "_READ_AHEAD", 20)  # and the reading held back by the results

    def url(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / name}"
        return fresh_postgres_url(request.getfixturevalue("postgres_base_url"))

    one, one_rows = _ingest_twice(url("one.db"), archive, jobs=1)
    two, two_rows = _ingest_twice(url("two.db"), archive, jobs=2)
    _same_reports(one, two)  # failures included, with their paths and reasons, in order
    assert one_rows == two_rows


def test_cli_jobs(tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(parsing, "POOL_AFTER", 8)
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'cli.db'}\n", encoding="utf-8")
    code = main(["--config", str(config), "ingest", "--jobs", "2", "--json", str(archive / "one")])
    out = capsys.readouterr().out
    assert code == 1  # the broken documents are reported
    assert '"new": ' in out and "binary data" in out
    with pytest.raises(SystemExit):
        main(["--config", str(config), "ingest", "--jobs", "0", str(archive / "one")])
    assert "--jobs" in capsys.readouterr().err


def test_a_few_documents_never_start_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pool(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a pool was started for a handful of documents")

    monkeypatch.setattr(parsing, "ProcessPoolExecutor", no_pool)
    varied_archive(tmp_path / "few", _FIXTURES, 12)
    db = open_database(f"sqlite:///{tmp_path / 'few.db'}")
    report = ingest(db, [tmp_path / "few"], jobs=8)
    db.dispose()
    assert report.documents_new == 12 and report.items_new > 0
