"""Ingest: counts, incremental re-ingest, dedupe, archives, encodings and bad documents."""

from __future__ import annotations

import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.cli import main
from digests.ingest.decode import decode_document
from digests.ingest.pipeline import ingest
from digests.store.models import Document, Item, ItemSource

SEED_COUNTS = {"000": 3, "001": 35, "002": 15, "003": 1, "004": 3}

COLUMN = """---
author: 硬核老王
category: 硬核观察
date: '2022-05-01 10:00:00'
id: 99001
permalink: /article-99001-1.html
title: '硬核观察 #1 测试用的第一条新闻'
tags: [开源]
fromurl: ''
islctt: false
---

### 测试用的第一条新闻

这是第一条新闻的正文，提到了 [项目主页](https://example.org/alpha?utm_source=x)。

> **[消息来源：示例日报](https://news.example.com/a)**

> 老王点评：第一条的点评。

### 测试用的第二条新闻

第二条新闻的正文，链接到 [另一个站点](https://news.example.com/b)。

> **[消息来源：示例周刊](https://news.example.com/b)**

> 老王点评：第二条的点评。
"""


def _count(db, model) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _live_items(db) -> list[Item]:
    with db.session() as session:
        return list(session.scalars(select(Item).where(Item.removed.is_(False)).order_by(Item.id)))


def test_seed_counts_and_rerun_unchanged(db, seeds_dir: Path) -> None:
    report = ingest(db, [seeds_dir])
    assert report.documents_failed == 0 and report.documents_new == 5
    assert report.items_new == sum(SEED_COUNTS.values()) == 57
    with db.session() as session:
        per_doc = dict(session.execute(
            select(Document.path, func.count(ItemSource.id)).join(ItemSource).group_by(Document.path)
        ).all())
    assert {Path(p).name[:3]: n for p, n in per_doc.items()} == SEED_COUNTS

    again = ingest(db, [seeds_dir])
    assert again.documents_unchanged == 5 and again.items_new == 0 and again.documents_updated == 0
    assert len(_live_items(db)) == 57


def test_corpus_ingests_without_failures(sqlite_db, corpus_dir: Path) -> None:
    report = ingest(sqlite_db, [corpus_dir])
    assert report.failures == []
    assert report.documents_new == 111
    for item in _live_items(sqlite_db):
        assert item.title and item.url.startswith(("http://", "https://"))


def test_changed_document_updates_in_place(sqlite_db, tmp_path: Path) -> None:
    doc = tmp_path / "column.md"
    doc.write_text(COLUMN, encoding="utf-8")
    ingest(sqlite_db, [doc])
    before = {item.title: item.id for item in _live_items(sqlite_db)}
    assert set(before) == {"测试用的第一条新闻", "测试用的第二条新闻"}

    doc.write_text(COLUMN.replace("第一条的点评", "改过的点评"), encoding="utf-8")
    report = ingest(sqlite_db, [doc])
    assert report.documents_updated == 1 and report.items_updated == 1 and report.items_new == 0
    items = {item.title: item for item in _live_items(sqlite_db)}
    assert items["测试用的第一条新闻"].id == before["测试用的第一条新闻"]
    assert items["测试用的第一条新闻"].commentary == "改过的点评。"

    # a section that disappears from the document is no longer offered
    doc.write_text(COLUMN.split("### 测试用的第二条新闻")[0], encoding="utf-8")
    report = ingest(sqlite_db, [doc])
    assert report.items_removed == 1
    assert [item.title for item in _live_items(sqlite_db)] == ["测试用的第一条新闻"]


def test_cross_source_duplicate_is_stored_once(sqlite_db, tmp_path: Path) -> None:
    tmp_path = tmp_path / "archive"
    tmp_path.mkdir()
    (tmp_path / "a.md").write_text(COLUMN, encoding="utf-8")
    # the same story linked with tracking parameters and http:// in another document
    other = COLUMN.replace("99001", "99002").replace("https://news.example.com/a", "http://www.news.example.com/a/?utm_medium=rss")
    (tmp_path / "b.md").write_text(other, encoding="utf-8")
    report = ingest(sqlite_db, [tmp_path])
    assert report.items_new == 2 and report.items_duplicate == 2
    assert len(_live_items(sqlite_db)) == 2
    assert _count(sqlite_db, ItemSource) == 4  # every source remembered


def test_archives_and_encodings(sqlite_db, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as zf:
        zf.writestr("inner/column.md", COLUMN.encode("utf-8"))
        zf.writestr("inner/gbk.md", COLUMN.replace("99001", "99003").replace("example.org/alpha", "example.org/gbk")
                    .replace("news.example.com/a", "news.example.com/gbk").replace("news.example.com/b", "news.example.com/gbk2")
                    .encode("gb18030"))
    bom = tmp_path / "src"
    bom.mkdir()
    (bom / "bom.md").write_bytes(b"\xef\xbb\xbf" + COLUMN.replace("99001", "99004")
                                 .replace("news.example.com/", "bom.example.com/").encode("utf-8"))
    with tarfile.open(tmp_path / "bundle.tar.gz", "w:gz") as tf:
        tf.add(bom / "bom.md", arcname="bom.md")
    report = ingest(sqlite_db, [tmp_path / "bundle.zip", tmp_path / "bundle.tar.gz"])
    assert report.failures == []
    assert report.documents_new == 3
    titles = [item.title for item in _live_items(sqlite_db)]
    assert titles.count("测试用的第一条新闻") == 3  # three distinct stories sharing a title
    with sqlite_db.session() as session:
        paths = list(session.scalars(select(Document.path)))
    assert any(p.endswith("bundle.zip!inner/gbk.md") for p in paths)


def test_bad_documents_are_reported_and_the_rest_goes_on(sqlite_db, tmp_path: Path) -> None:
    tmp_path = tmp_path / "archive"
    tmp_path.mkdir()
    (tmp_path / "good.md").write_text(COLUMN, encoding="utf-8")
    (tmp_path / "broken_yaml.md").write_text("---\ntitle: [unclosed\ncategory: 硬核观察\npermalink: /article-1-1.html\n---\nbody",
                                             encoding="utf-8")
    (tmp_path / "broken.json").write_text('{"toInsertArticleList": [', encoding="utf-8")
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "unknown.txt").write_text("just some words, no format at all", encoding="utf-8")
    huge = tmp_path / "huge.md"
    with huge.open("wb") as fh:  # sparse: 200 MB on paper, nothing on disk
        fh.truncate(200 * 1024 * 1024)
    report = ingest(sqlite_db, [tmp_path], max_bytes=20 * 1024 * 1024)
    reasons = {Path(path).name: reason for path, reason in report.failures}
    assert set(reasons) == {"broken_yaml.md", "broken.json", "junk.bin", "unknown.txt", "huge.md"}
    assert "YAML" in reasons["broken_yaml.md"]
    assert "JSON" in reasons["broken.json"]
    assert "binary" in reasons["junk.bin"]
    assert "unknown format" in reasons["unknown.txt"]
    assert "too large" in reasons["huge.md"] and "200.0 MB" in reasons["huge.md"]
    assert report.items_new == 2
    with sqlite_db.session() as session:
        errors = dict(session.execute(select(Document.path, Document.error)).all())
    assert errors[str(tmp_path / "good.md")] is None
    assert "YAML" in errors[str(tmp_path / "broken_yaml.md")]


def test_decode_document_gbk_and_bom() -> None:
    text = "硬核观察：开源芯片"
    assert decode_document(text.encode("gbk")) == text
    assert decode_document(b"\xef\xbb\xbf" + text.encode()) == text
    assert decode_document(text.encode("utf-16")) == text


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory: pytest.TempPathFactory):
    from digests.store import open_database

    db = open_database(f"sqlite:///{tmp_path_factory.mktemp('fuzzdb') / 'f.db'}")
    yield db
    db.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000) | st.text(max_size=2000).map(lambda s: s.encode("utf-8")))
def test_ingest_never_crashes_on_random_documents(tmp_path_factory: pytest.TempPathFactory, fuzz_db,
                                                   data: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "doc.md").write_bytes(data)
    (folder / "mutated.md").write_bytes(COLUMN.encode()[: len(data) % len(COLUMN)] + data[:200])
    report = ingest(fuzz_db, [folder])
    assert report.documents_seen == 2
    for path, reason in report.failures:
        assert path.startswith(str(folder)) and reason


def test_cli_ingest_json_and_items(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "column.md").write_text(COLUMN, encoding="utf-8")
    (archive / "bad.json").write_text("{", encoding="utf-8")
    assert main(["ingest", str(archive), "--json"]) == 1  # a failed document sets the exit code
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents"] == {"new": 1, "unchanged": 0, "updated": 0, "failed": 1, "without_items": 0}
    assert summary["failures"][0]["path"].endswith("bad.json")

    assert main(["items", "--json", "--limit", "5"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == 2
    first = items[0]
    for key in ("id", "document", "title", "url", "links", "summary", "commentary", "image", "source",
                "published_at", "tags"):
        assert key in first
    assert first["document"].endswith("column.md")
    assert first["url"] == "https://news.example.com/a"
    assert first["commentary"] == "第一条的点评。"
    assert first["published_at"] == "2022-05-01T10:00:00+08:00" or first["published_at"].startswith("2022-05-01T02:00:00")


def test_cli_bad_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("channels:\n  - {name: main, chat_id: '@my_channel', schedule: ['61 9 * * *'], colour: red}\n",
                      encoding="utf-8")
    assert main(["--config", str(config), "items"]) == 2
    err = capsys.readouterr().err
    assert "channels[0:main].schedule" in err and "example" in err
    assert "channels[0:main].colour: unknown key" in err
    assert "Traceback" not in err


def test_env_overrides_config(tmp_path: Path) -> None:
    from bot.config import load_config

    config = tmp_path / "config.yaml"
    config.write_text("telegram: {token: 'from-file'}\ndatabase: {url: 'sqlite:///file.db'}\n", encoding="utf-8")
    loaded = load_config(config, env={"DIGESTBOT_TOKEN": "1:env", "DIGESTBOT_DATABASE_URL": "sqlite:///env.db"})
    assert loaded.token == "1:env" and loaded.database.url == "sqlite:///env.db"
    assert "1:env" not in repr(loaded)  # the token is a secret


def test_example_config_is_valid() -> None:
    from bot.config import load_config

    root = Path(__file__).resolve().parent.parent
    config = load_config(root / "config.example.yaml", env={})
    assert config.channels[0].name == "main"
    assert os.path.basename(config.database.url) == "digest.db"


def test_many_small_batches_store_what_one_batch_stores(db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first ingest is cut into transactions by documents or items: where the cuts fall must not
    matter (duplicates across batches, search entries, the report)."""
    import shutil

    from digests.ingest import pipeline as ingest_module
    from digests.store import open_database
    from digests.store.search import search_items

    sample = Path(ingest_module.__file__).parent.parent / "sample_archive"
    archive = tmp_path / "archive"
    shutil.copytree(sample, archive)
    (archive / "column.md").write_text(COLUMN, encoding="utf-8")
    (archive / "zz-column-again.md").write_text(COLUMN.replace("99001", "99002"), encoding="utf-8")

    whole_db = open_database(f"sqlite:///{tmp_path / 'whole.db'}")
    whole = ingest(whole_db, [archive])
    monkeypatch.setattr(ingest_module, "_BATCH_DOCUMENTS", 2)
    monkeypatch.setattr(ingest_module, "_BATCH_ITEMS", 3)
    cut = ingest(db, [archive])

    assert cut.as_dict() | {"failures": []} == whole.as_dict() | {"failures": []}
    assert cut.documents_new == len(list(archive.iterdir())) and cut.items_duplicate >= 2

    def stored(database) -> list[tuple[str, str, int]]:
        with database.session() as session:
            rows = session.execute(
                select(Item.title, Item.url, func.count(ItemSource.id)).join(ItemSource).group_by(Item.id)
            ).all()
            return sorted((title, url, sources) for title, url, sources in rows)

    assert stored(db) == stored(whole_db)
    with db.session() as session:
        assert [item.title for item in search_items(session, "第二条").results] == ["测试用的第二条新闻"]
    whole_db.dispose()


def _cli_ingest(tmp_path: Path, *paths: Path) -> dict:
    """`digestbot ingest --json` in a child process: a hang fails the test instead of the suite."""
    import subprocess
    import sys

    env = {**os.environ, "DIGESTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    code = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
    try:
        done = subprocess.run([sys.executable, "-c", code, "ingest", *map(str, paths), "--json"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("ingest did not finish within 60 s")
    return json.loads(done.stdout)


def test_fifo_and_socket_in_an_archive_folder_are_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    import socket

    archive = tmp_path / "a"
    archive.mkdir()
    (archive / "good.md").write_text(COLUMN, encoding="utf-8")
    os.mkfifo(archive / "pipe.md")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(archive / "sock.md"))
    try:
        summary = _cli_ingest(tmp_path, archive)
    finally:
        listener.close()
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert reasons == {"pipe.md": "not a regular file: fifo", "sock.md": "not a regular file: socket"}
    assert summary["items"]["new"] == 2


def test_device_file_in_an_archive_folder_is_reported_not_read(tmp_path: Path) -> None:
    import stat

    archive = tmp_path / "a"
    archive.mkdir()
    (archive / "good.md").write_text(COLUMN, encoding="utf-8")
    try:  # a /dev/zero: reading it never ends
        os.mknod(archive / "zero.md", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("making a device file needs CAP_MKNOD")
    summary = _cli_ingest(tmp_path, archive)
    assert [(Path(f["path"]).name, f["reason"]) for f in summary["failures"]] == [
        ("zero.md", "not a regular file: character device")]
    assert summary["items"]["new"] == 2


UNCLOSED = "front matter is not closed (no closing ---)"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"\xef\xbb\xbf", "empty file"),
        (b" \n\t\r\n", "empty file (only whitespace)"),
        ("---\ntitle: 只写了开头\ncategory: 技术\n".encode(), UNCLOSED),  # a Jekyll post cut short
        (COLUMN.split("---\n\n")[0].encode(), UNCLOSED),  # a linux.cn article cut before its fence
    ],
    ids=["empty", "bom-only", "whitespace", "jekyll-cut", "linuxcn-cut"],
)
def test_empty_files_and_unclosed_front_matter_say_what_is_wrong(sqlite_db, tmp_path: Path, content: bytes,
                                                                   reason: str) -> None:
    doc = tmp_path / "doc.md"
    doc.write_bytes(content)
    report = ingest(sqlite_db, [doc])
    assert report.failures == [(str(doc), reason)]


def test_tar_links_and_devices_are_reported_by_member_name(sqlite_db, tmp_path: Path) -> None:
    import io

    bundle = tmp_path / "bundle.tar"
    with tarfile.open(bundle, "w") as tf:
        data = COLUMN.encode("utf-8")
        regular = tarfile.TarInfo("good.md")
        regular.size = len(data)
        tf.addfile(regular, io.BytesIO(data))
        for name, kind, target in [("link.md", tarfile.SYMTYPE, "/etc/passwd"), ("hard.md", tarfile.LNKTYPE, "good.md"),
                                   ("dev.md", tarfile.CHRTYPE, ""), ("pipe.md", tarfile.FIFOTYPE, ""),
                                   ("folder", tarfile.DIRTYPE, "")]:
            member = tarfile.TarInfo(name)
            member.type, member.linkname = kind, target
            tf.addfile(member)
    report = ingest(sqlite_db, [bundle])
    assert sorted(report.failures) == [
        (f"{bundle}!dev.md", "not a regular file: character device"),
        (f"{bundle}!hard.md", "not a regular file: hardlink to good.md"),
        (f"{bundle}!link.md", "not a regular file: symlink to /etc/passwd"),
        (f"{bundle}!pipe.md", "not a regular file: fifo"),
    ]
    assert report.items_new == 2 and report.documents_new == 1


def test_symlinks_out_of_the_archive_folder_are_reported_and_never_read(sqlite_db, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.md"  # a document ingest would gladly read: it must not
    secret.write_text(COLUMN.replace("example", "secret"), encoding="utf-8")
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "good.md").write_text(COLUMN, encoding="utf-8")
    (archive / "passwd.md").symlink_to("/etc/passwd")
    (archive / "relative.md").symlink_to("../outside/secret.md")
    (archive / "chain.md").symlink_to("relative.md")  # inside, but it ends outside
    (archive / "folder").symlink_to(outside, target_is_directory=True)
    report = ingest(sqlite_db, [archive])
    real = os.path.realpath
    assert sorted(report.failures) == [
        (str(archive / "chain.md"), f"symlink points outside the archive: {secret}"),
        (str(archive / "folder"), f"symlink points outside the archive: {outside}"),
        (str(archive / "passwd.md"), f"symlink points outside the archive: {real('/etc/passwd')}"),
        (str(archive / "relative.md"), f"symlink points outside the archive: {secret}"),
    ]
    assert report.items_new == 2
    assert all("secret" not in item.url for item in _live_items(sqlite_db))


def test_symlink_within_the_archive_folder_is_followed_and_read_as_its_target(sqlite_db, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (archive / "2022").mkdir(parents=True)
    (archive / "2022" / "column.md").write_text(COLUMN, encoding="utf-8")
    (archive / "latest.md").symlink_to("2022/column.md")
    report = ingest(sqlite_db, [archive])
    assert report.failures == [] and report.documents_new == 2
    assert report.items_new == 2 and report.items_duplicate == 2  # the same stories, stored once
    assert len(_live_items(sqlite_db)) == 2


def test_pages_that_differ_only_in_a_query_parameter_stay_two_items(sqlite_db, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    for n, version in enumerate(("6.1", "6.2")):
        text = COLUMN.replace("99001", f"9900{n + 1}").replace("https://news.example.com/a",
                                                                  f"https://kernel.org/doc/html?version={version}")
        (archive / f"{n}.md").write_text(text, encoding="utf-8")
    report = ingest(sqlite_db, [archive])
    assert report.items_new == 3 and report.items_duplicate == 1  # the second section is one story
    assert sorted(item.url for item in _live_items(sqlite_db)) == [
        "https://kernel.org/doc/html?version=6.1", "https://kernel.org/doc/html?version=6.2",
        "https://news.example.com/b"]


WECHAT = "https://mp.weixin.qq.com/s?__biz=MzA3&mid=265&idx=1&sn=6f0e"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://kernel.org/doc/html?version=6.1", "https://kernel.org/doc/html?version=6.2"),
        ("https://example.org/docs/intro?lang=en", "https://example.org/docs/intro?lang=zh-cn"),
        ("https://gitlab.com/group/project/-/tree?ref=main", "https://gitlab.com/group/project/-/tree?ref=dev"),
        ("https://example.org/search?q=rust&source=github", "https://example.org/search?q=rust&source=gitlab"),
        ("https://example.org/changes?from=2024-01-01", "https://example.org/changes?from=2024-02-01"),
        ("https://news.ycombinator.com/item?id=1", "https://news.ycombinator.com/item?id=2"),
        (WECHAT, WECHAT.replace("idx=1", "idx=2")),
    ],
)
def test_canonical_urls_keep_apart_pages_that_differ(first: str, second: str) -> None:
    from digests.ingest.normalize import canonical_url

    assert canonical_url(first) != canonical_url(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://www.example.org/a/?utm_source=rss&utm_medium=feed", "http://example.org/a"),
        ("https://example.org/a?UTM_Campaign=spring&id=7", "https://example.org/a?id=7"),
        ("https://example.org/a?fbclid=IwAR0x&gclid=Cj0K&msclkid=9f", "https://example.org/a"),
        ("https://example.org/a?mc_cid=1a&mc_eid=2b&_hsenc=p2&_hsmi=3", "https://example.org/a"),
        ("https://www.aliyun.com/product/ecs?spm=5176.8142029.0.0", "https://www.aliyun.com/product/ecs"),
        ("https://twitter.com/a/status/1?ref_src=twsrc%5Etfw", "https://twitter.com/a/status/1"),
        ("https://example.org/p?b=2&a=1", "https://example.org/p?a=1&b=2"),
        (WECHAT + "&chksm=84b1&scene=21&from=timeline&isappinstalled=0&lang=zh_CN", WECHAT),
        ("https://mp.weixin.qq.com/s/AbC-d_1?scene=1", "https://mp.weixin.qq.com/s/AbC-d_1"),
    ],
)
def test_canonical_urls_merge_what_differs_only_in_tracking(first: str, second: str) -> None:
    from digests.ingest.normalize import canonical_url

    assert canonical_url(first) == canonical_url(second)


MARKUP_NAME = "x[/red]y.md"  # rich markup in a name (a member, or a file red]y.md in a folder x[)


def test_cli_prints_names_that_look_like_rich_markup(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "x[").mkdir()
    (archive / MARKUP_NAME).write_text("", encoding="utf-8")  # empty: a failure that names the file
    (archive / "[bold]column.md").write_text(COLUMN.replace("测试用的第一条新闻", "[/red]第一条[bold]"),
                                             encoding="utf-8")
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as zf:
        zf.writestr(MARKUP_NAME, "{")
    assert main(["ingest", str(archive), str(tmp_path / "bundle.zip")]) == 1
    out, err = capsys.readouterr()
    assert f"failed {archive / MARKUP_NAME}: empty file" in out
    assert f"failed {tmp_path / 'bundle.zip'}!{MARKUP_NAME}: " in out
    assert "internal error" not in err and "MarkupError" not in err

    assert main(["items"]) == 0  # a title that looks like markup, in a rich table
    assert "[/red]第一条[bold]" in capsys.readouterr().out



@pytest.mark.parametrize(("argv", "problem"), [
    (["comment", "²", "text"], "argument ITEM_ID: ITEM_ID must be a number written with the digits 0-9, not '²'"),
    (["comment", "99999999999999999999999", "text"], "ITEM_ID 99999999999999999999999 is too large: at most"),
    (["uncertain", "--confirm", "²"], "argument --confirm: POST_ID must be a number"),
    (["uncertain", "--drop", "99999999999999999999999"], "POST_ID 99999999999999999999999 is too large"),
    (["items", "--limit", "99999999999999999999"], "argument --limit: N 99999999999999999999 is too large"),
])
def test_cli_ids_are_ascii_numbers_within_range(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                problem: str) -> None:
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert problem in err and "Traceback" not in err and "internal error" not in err
