"""Git repositories made by the tests with the git binary: clone, incremental fetch, deletions, bad files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from digests.clock import utcnow
from digests.source_config import FetchConfig, SourceConfig
from digests.sources.refresh import Outcome, Refresher
from digests.sources.registry import find_source, records, sync_config
from digests.store.db import Database
from tests.feed_server import entries, linuxcn_markdown

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


class Repo:
    """A working copy and the bare repository it pushes to (what a source follows)."""

    def __init__(self, root: Path, branch: str = "main") -> None:
        self.work, self.bare, self.branch = root / "work", root / "news.git", branch
        self.work.mkdir(parents=True)
        self.git("init", "-q", "-b", branch)
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(self.bare)], check=True, env=GIT_ENV)

    @property
    def url(self) -> str:
        return f"git+file://{self.bare}"

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.work, check=True, capture_output=True, env=GIT_ENV)
        return done.stdout.decode().strip()

    def write(self, path: str, content: str | bytes) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)

    def remove(self, path: str) -> None:
        self.git("rm", "-q", path)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", str(self.bare), f"HEAD:{self.branch}")
        return self.git("rev-parse", "HEAD")


def post(number: int, count: int) -> str:
    return linuxcn_markdown(number, entries(f"p{number}", count))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repository = Repo(tmp_path / "origin")
    repository.write("posts/a.md", post(1, 3))
    repository.write("posts/b.md", post(2, 2))
    repository.commit("two posts")
    return repository


def refresher(db: Database, tmp_path: Path) -> Refresher:
    return Refresher(db, FetchConfig(cache_dir=str(tmp_path / "cache"), git_timeout=60))


def follow(db: Database, name: str, url: str, **settings: Any) -> None:
    sync_config(db, [SourceConfig(name=name, url=url, interval="every 1m", **settings)], utcnow())


def refresh(db: Database, tmp_path: Path, name: str = "news") -> Outcome:
    worker = refresher(db, tmp_path)
    try:
        [outcome] = worker.refresh(records(db, [name]))
        return outcome
    finally:
        worker.close()


def live_documents(db: Database) -> dict[str, int]:
    from sqlalchemy import func, select

    from digests.store.models import Document, Item, ItemSource

    with db.session() as session:
        rows = session.execute(select(Document.path, func.count(Item.id)).join(ItemSource, ItemSource.document_id == Document.id)
                               .join(Item, Item.id == ItemSource.item_id).where(Item.removed.is_(False))
                               .group_by(Document.path))
        return {path: count for path, count in rows}


def test_cli_ingests_a_git_file_url(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'cli.db'}"}}), encoding="utf-8")
    head = repo.git("rev-parse", "HEAD")
    assert main(["--config", str(config), "ingest", repo.url, "--json"]) == 0
    [outcome] = json.loads(capsys.readouterr().out)["sources"]
    assert (outcome["status"], outcome["commit"], outcome["items_added"]) == ("ok", head, 5)
    assert main(["--config", str(config), "items", "--json", "--limit", "10"]) == 0
    documents = {item["document"] for item in json.loads(capsys.readouterr().out)}
    assert documents == {f"{repo.url}#main:posts/a.md", f"{repo.url}#main:posts/b.md"}
    assert main(["--config", str(config), "ingest", repo.url]) == 0
    assert capsys.readouterr().out.strip() == f"{repo.url}: unchanged, commit {head[:10]}"
    # The clone lives below the working directory's cache, made once.
    assert len(list((tmp_path / ".digestbot" / "sources").iterdir())) == 1


def test_a_new_commit_reads_only_the_changed_files_and_removes_deleted_ones(repo: Repo, sqlite_db: Database,
                                                                             tmp_path: Path) -> None:
    follow(sqlite_db, "news", repo.url)
    first = refresh(sqlite_db, tmp_path)
    assert first.report is not None and first.report.documents_new == 2
    repo.write("posts/a.md", post(1, 4))  # one more section
    repo.remove("posts/b.md")
    repo.write("posts/c.md", post(3, 1))
    for n in range(20):  # untouched files are never read again
        repo.write(f"posts/old/{n}.md", post(100 + n, 1))
    repo.commit("bulk")
    refresh(sqlite_db, tmp_path)
    repo.write("posts/a.md", post(1, 5))
    repo.remove("posts/old/3.md")
    head = repo.commit("edit a, drop old/3")

    outcome = refresh(sqlite_db, tmp_path)
    report = outcome.report
    assert report is not None
    assert (report.documents_new, report.documents_updated, report.documents_unchanged) == (0, 1, 0)
    assert (report.items_new, outcome.removed) == (1, 1)
    assert find_source(sqlite_db, "news").git_commit == head == outcome.commit
    documents = live_documents(sqlite_db)
    assert documents[f"{repo.url}#main:posts/a.md"] == 5
    assert f"{repo.url}#main:posts/b.md" not in documents and f"{repo.url}#main:posts/old/3.md" not in documents
    assert len(documents) == 1 + 1 + 19
    from sqlalchemy import text

    with sqlite_db.session() as session:  # removed items leave the search index too
        indexed = set(session.scalars(text("SELECT item_id FROM search_docs")))
        removed = set(session.scalars(text("SELECT id FROM items WHERE removed = 1")))
        live = set(session.scalars(text("SELECT id FROM items WHERE removed = 0")))
    assert len(removed) == 3 and not removed & indexed and live <= indexed

    again = refresh(sqlite_db, tmp_path)
    assert (again.status, again.report) == ("unchanged", None)


def test_files_that_are_not_text_are_a_clear_error_and_the_rest_goes_on(repo: Repo, sqlite_db: Database,
                                                                      tmp_path: Path) -> None:
    repo.write("posts/latin1.md", "---\ntitle: Caf\xe9\n---\n".encode("latin-1") + b"\xff\xfe\xff\x80 bytes")
    repo.write("posts/gbk.md", post(7, 1).encode("gbk"))  # not UTF-8, but GBK is read
    repo.write("posts/\xe4\xb8\xad.md".encode("latin-1").decode("utf-8"), post(8, 1))  # 中.md
    (repo.work / "posts").joinpath(os.fsdecode(b"caf\xe9.md")).write_text(post(9, 1), encoding="utf-8")
    repo.commit("odd files")
    follow(sqlite_db, "news", repo.url)
    outcome = refresh(sqlite_db, tmp_path)
    assert outcome.status == "partial"
    assert outcome.error == (f"1 document(s) failed; {repo.url}#main:posts/latin1.md: "
                             "binary data, not text in UTF-8 or GB18030/GBK")
    documents = live_documents(sqlite_db)
    assert documents[f"{repo.url}#main:posts/gbk.md"] == 1
    assert documents[f"{repo.url}#main:posts/中.md"] == 1
    assert documents[f"{repo.url}#main:posts/caf\\xe9.md"] == 1  # a name that is not UTF-8 stays visible
    assert find_source(sqlite_db, "news").last_error == outcome.error


def test_branch_subfolder_and_select(tmp_path: Path, sqlite_db: Database) -> None:
    repo = Repo(tmp_path / "origin", branch="pub")
    repo.write("published/2024/a.md", post(1, 2))
    repo.write("published/cover.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
    repo.write("drafts/b.md", post(2, 2))
    repo.write("README.md", "# notes\n")
    repo.commit("layout")
    follow(sqlite_db, "news", f"{repo.url}#pub:published", select=["*.md"])
    outcome = refresh(sqlite_db, tmp_path)
    assert (outcome.status, outcome.items_added) == ("ok", 2)
    assert set(live_documents(sqlite_db)) == {f"{repo.url}#pub:published/2024/a.md"}


def test_a_repository_that_does_not_exist(sqlite_db: Database, tmp_path: Path) -> None:
    follow(sqlite_db, "news", f"git+file://{tmp_path / 'nowhere.git'}")
    outcome = refresh(sqlite_db, tmp_path)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.startswith("git clone failed: fatal: ")
    assert "nowhere.git" in outcome.error and "does not appear to be a git repository" in outcome.error
    cache = tmp_path / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []  # no half clone left behind


def test_a_lost_clone_is_made_again_and_what_left_the_tree_is_removed(repo: Repo, sqlite_db: Database,
                                                                     tmp_path: Path) -> None:
    import shutil

    follow(sqlite_db, "news", repo.url)
    refresh(sqlite_db, tmp_path)
    repo.remove("posts/b.md")
    repo.commit("drop b")
    shutil.rmtree(tmp_path / "cache")
    outcome = refresh(sqlite_db, tmp_path)
    assert outcome.report is not None and outcome.report.documents_unchanged == 1  # a.md: read, not parsed
    assert outcome.removed == 2
    assert set(live_documents(sqlite_db)) == {f"{repo.url}#main:posts/a.md"}
