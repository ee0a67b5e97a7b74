"""Shared fixtures: the read-only ../shared material and the databases under test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the clone; tests that need it skip cleanly when it is absent."""
    if not (SHARED / "seeds").is_dir():
        pytest.skip("../shared is not beside this clone (seeds and corpus unavailable)")
    return SHARED


@pytest.fixture(scope="session")
def seeds_dir(shared_dir: Path) -> Path:
    return shared_dir / "seeds"


@pytest.fixture(scope="session")
def corpus_dir(shared_dir: Path) -> Path:
    path = shared_dir / "corpus"
    if not path.is_dir():
        pytest.skip("../shared/corpus is not available")
    return path


def _postgres_url() -> str | None:
    import os

    return os.environ.get("TEST_DATABASE_URL") or None


@pytest.fixture(scope="session")
def postgres_base_url() -> str:
    url = _postgres_url()
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped (.ci/run sets it)")
    return url


def fresh_postgres_url(base_url: str) -> str:
    """A URL whose connections use a new, empty schema of their own (dropped at exit)."""
    import atexit
    import uuid

    from sqlalchemy import create_engine, text

    from digests.store.db import normalise_url

    base_url = normalise_url(base_url)
    schema = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(base_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()

    def drop() -> None:
        eng = create_engine(base_url)
        with eng.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()

    atexit.register(drop)
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database URL, on SQLite and (when TEST_DATABASE_URL is set) PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'digest.db'}"
    base = request.getfixturevalue("postgres_base_url")
    return fresh_postgres_url(base)


@pytest.fixture
def db(db_url: str):
    """An opened, migrated Database on each backend."""
    from digests.store import open_database

    database = open_database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path):
    from digests.store import open_database

    database = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
    yield database
    database.dispose()


from tests.fakebotapi import fake_bot_api  # noqa: E402,F401  (the fixture, for every test module)
