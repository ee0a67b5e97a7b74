"""Commentary sources in order: the document's own, an editor's, then the optional plugin's draft."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli import main
from digests.config import CommentatorConfig
from digests.ingest.pipeline import ingest
from digests.publishing.commentator import OpenAICompatibleCommentator, clean_draft, fill_missing_commentary
from digests.store.items import add_commentary, item_views
from digests.store.models import Commentary, Item

NO_COMMENTARY = """---
category: 技术
date: '2022-06-01 08:00:00'
id: 99100
permalink: /article-99100-1.html
title: 一篇没有点评的技术文章
summary: 介绍一个数据库的新版本。
fromurl: 'https://db.example.org/release'
islctt: false
tags: [数据库]
---

正文第一段，讲了新版本的特性。
"""


class _FakeModel(BaseHTTPRequestHandler):
    replies: list[Any] = []
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        reply = type(self).replies.pop(0) if type(self).replies else {"status": 500}
        status = reply.get("status", 200)
        payload = json.dumps(reply.get("json", {})).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def model_server() -> Iterator[str]:
    _FakeModel.replies, _FakeModel.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _completion(text: str) -> dict[str, Any]:
    return {"json": {"choices": [{"message": {"role": "assistant", "content": text}}]}}


@pytest.fixture
def article_db(sqlite_db, tmp_path: Path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "article.md").write_text(NO_COMMENTARY, encoding="utf-8")
    ingest(sqlite_db, [archive])
    return sqlite_db


def _item_id(db) -> int:
    with db.session() as session:
        return session.scalars(select(Item.id)).one()


def _view(db, item_id: int):
    with db.session() as session:
        return item_views(session, [session.get(Item, item_id)])[0]


def test_plugin_drafts_commentary_for_items_without_any(article_db, model_server: str) -> None:
    _FakeModel.replies = [_completion("老王点评：新版本值得一试。\n多余的第二行")]
    config = CommentatorConfig(enabled=True, url=model_server, model="tiny", api_key="sk-test")
    item_id = _item_id(article_db)
    assert fill_missing_commentary(article_db, OpenAICompatibleCommentator(config), [item_id]) == 1
    view = _view(article_db, item_id)
    assert view.commentary == "新版本值得一试。" and view.commentary_origin == "plugin"
    request = _FakeModel.seen[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert "一篇没有点评的技术文章" in request["body"]["messages"][1]["content"]
    with article_db.session() as session:
        entry = session.scalars(select(Commentary)).one()
    assert entry.author == "plugin:tiny" and entry.created_at is not None

    # asked again, the plugin is not called for an item that already has commentary
    assert fill_missing_commentary(article_db, OpenAICompatibleCommentator(config), [item_id]) == 0
    assert len(_FakeModel.seen) == 1


def test_editor_commentary_beats_the_plugin(article_db) -> None:
    item_id = _item_id(article_db)
    with article_db.session() as session:
        add_commentary(session, item_id, "机器写的点评", author="plugin:tiny", origin="plugin")
        add_commentary(session, item_id, "编辑写的点评", author="tg:1001")
        add_commentary(session, item_id, "又一条机器点评", author="plugin:tiny", origin="plugin")
    view = _view(article_db, item_id)
    assert (view.commentary, view.commentary_origin) == ("编辑写的点评", "editor")


def test_plugin_failure_leaves_the_item_alone(article_db, model_server: str) -> None:
    _FakeModel.replies = [{"status": 500}]
    config = CommentatorConfig(enabled=True, url=model_server, model="tiny")
    item_id = _item_id(article_db)
    assert fill_missing_commentary(article_db, OpenAICompatibleCommentator(config), [item_id]) == 0
    assert _view(article_db, item_id).commentary == ""


def test_clean_draft() -> None:
    assert clean_draft("\n  “老王点评： 好。” \n") == "好。"
    assert clean_draft(None) is None
    assert clean_draft("   \n  ") is None
    assert len(clean_draft("长" * 500) or "") == 140


def test_cli_comment_stores_who_and_when(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.chdir(tmp_path)
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "article.md").write_text(NO_COMMENTARY, encoding="utf-8")
    assert main(["ingest", str(archive), "--json"]) == 0
    capsys.readouterr()
    assert main(["comment", "1", "值得", "升级", "--author", "alice"]) == 0
    assert main(["items", "--json"]) == 0
    items = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert items[0]["commentary"] == "值得 升级" and items[0]["commentary_origin"] == "editor"

    assert main(["comment", "999", "不存在"]) == 2
    assert "no item 999" in capsys.readouterr().err


async def test_a_slot_drafts_commentary_for_the_items_it_posts(article_db, model_server: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import config_from_mapping
    from bot.publisher import Publisher
    from digests.publishing import due, planning
    from digests.store.channel_sync import sync_channels

    _FakeModel.replies = [_completion("老王点评：新版本值得一试。")]
    config = config_from_mapping({
        "channels": [{"name": "main", "chat_id": "@main_channel", "per_slot": 1}],
        "commentator": {"enabled": True, "url": model_server, "model": "tiny"},
    })
    with article_db.session() as session:
        sync_channels(session, config)
    selections: list[str] = []
    select_due = due.select_due

    def counted(session: Any, channel: Any, **kwargs: Any) -> Any:
        selections.append(channel.name)
        return select_due(session, channel, **kwargs)

    monkeypatch.setattr(due, "select_due", counted)
    monkeypatch.setattr(planning, "select_due", counted)
    echoed: list[Any] = []
    publisher = Publisher(article_db, config, None, dry_run=True, echo=lambda _name, post: echoed.append(post))
    planned = await publisher.run_slot("main")

    assert [post.item_ids for post in planned] == [[_item_id(article_db)]] and echoed == list(planned)
    assert "新版本值得一试。" in planned[0].html  # drafted before the post was rendered
    assert len(_FakeModel.seen) == 1 and "一篇没有点评的技术文章" in _FakeModel.seen[0]["body"]["messages"][1]["content"]
    assert selections == ["main"]  # one selection fed both the commentator and the planner
