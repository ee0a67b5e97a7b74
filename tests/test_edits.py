"""Sent posts follow their corrections: re-ingest or an editor's commentary edits the channel message.

End to end through `digestbot` in-process and the fake Bot API over HTTP, on SQLite and
PostgreSQL: ingest, `publish --once`, correct the archive, `publish --once` again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli import main as digestbot
from digests.formatting.blurb import Message
from digests.formatting.content_hash import content_hash
from digests.formatting.telegram_html import visible_length
from digests.store import open_database
from digests.store.models import Post
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi, SentMessage
from tests.publishing_helpers import (
    ADMIN,
    Story,
    article_document,
    column_document,
    config_data,
    write_config,
)
from tests.telegram_oracle import assert_valid_message

fake_bot_api = fakebotapi.fake_bot_api

# PTB 22 warns on every RetryAfter that retry_after will become a timedelta.
pytestmark = pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:telegram.warnings.PTBDeprecationWarning")

CHAT = -1004000000001
ARTICLES = {16101: "用 rsync 做增量备份", 16102: "用 tmux 管理终端会话", 16103: "用 git bisect 找到回归"}
CORRECTED = "用 tmux 管理远程终端会话（更正）"
COMMENTARY = "这才是 tmux 的正确用法。"
STORIES = [
    Story("内核合并实时补丁", "实时补丁集在讨论多年之后进入主线", "多年磨一剑。"),
    Story("某数据库换用新许可证", "一个流行的数据库项目宣布更换许可证", "社区又要分叉了。"),
    Story("浏览器默认启用新协议", "主流浏览器开始默认启用一个新的传输协议", "终于等到这一天。"),
]


def write_article(archive: Path, article_id: int, title: str, image: str = "") -> None:
    body = f"![](/data/attachment/album/2024/{image or article_id}.jpg)\n\n{title}：一篇关于命令行工具的短文。"
    day = 10 + article_id % 100
    (archive / f"{article_id}.md").write_text(article_document(article_id, f"2024-03-{day} 09:00:00", title, body),
                                              encoding="utf-8")


def write_column(archive: Path, stories: list[Story]) -> None:
    """A 硬核观察 column of these stories; each keeps its links and image wherever it stands."""
    text = column_document(16001, 1001, "2024-03-01 18:00:00", stories)
    for k, story in enumerate(stories, 1):  # column_document numbers links by position
        n = next(i for i, s in enumerate(STORIES, 1) if s.title == story.title)
        text = text.replace(f"/16001/{k}/", f"/16001/s{n}/").replace(f"/16001/{k})", f"/16001/s{n})")
        text = text.replace(f"16001-{k}.jpg", f"16001-s{n}.jpg").replace(f"示例周报 {k}]", f"示例周报 s{n}]")
    (archive / "column.md").write_text(text, encoding="utf-8")


@dataclass
class World:
    """An archive folder, a config.yaml pointing at it, the fake, and `digestbot` to run."""

    archive: Path
    config: Path
    db_url: str
    fake: FakeBotApi
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> tuple[int, str]:
        self.capsys.readouterr()
        code = digestbot(["--config", str(self.config), *args])
        return code, self.capsys.readouterr().out

    def publish(self) -> str:
        code, out = self.run("publish", "--once")
        assert code == 0, out
        return out

    def ingest(self) -> None:
        code, out = self.run("ingest", "--json")
        assert code == 0, out

    def deliveries(self) -> list[dict[str, Any]]:
        code, out = self.run("deliveries", "--json")
        assert code == 0
        return json.loads(out)

    def item_id(self, title: str) -> int:
        code, out = self.run("items", "--json")
        [found] = [row["id"] for row in json.loads(out) if row["title"] == title]
        return found

    def in_session(self, change: Callable[[Any], None]) -> None:
        db = open_database(self.db_url)
        try:
            with db.session() as session:
                change(session)
        finally:
            db.dispose()


@pytest.fixture
def make_world(db_url: str, fake_bot_api: FakeBotApi, tmp_path: Path,
               capsys: pytest.CaptureFixture[str]) -> Callable[..., World]:
    fake_bot_api.add_channel(CHAT, title="技术")
    fake_bot_api.add_user(ADMIN, first_name="Admin")

    def make(**channel: Any) -> World:
        archive = tmp_path / "archive"
        archive.mkdir()
        settings = {"name": "tech", "chat_id": CHAT, "per_slot": 3, **channel}
        data = config_data(db_url, base_url=fake_bot_api.base_url, token=fake_bot_api.token, channels=[settings],
                           archive={"paths": [str(archive)]})
        return World(archive, write_config(tmp_path / "config.yaml", data), db_url, fake_bot_api, capsys)

    return make


def articles_posted(world: World) -> list[SentMessage]:
    for article_id, title in ARTICLES.items():
        write_article(world.archive, article_id, title)
    world.ingest()
    world.publish()
    return world.fake.replies(CHAT)


def holding(messages: list[SentMessage], text: str) -> SentMessage:
    [message] = [m for m in messages if text in m.plain_text]
    return message


def row_of(rows: list[dict[str, Any]], message_id: int) -> dict[str, Any]:
    [row] = [r for r in rows if r["message_id"] == message_id]
    return row


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["single", "digest", "photo"])
def test_a_corrected_title_and_commentary_edit_the_sent_message(make_world: Callable[..., World], mode: str) -> None:
    """Re-ingest a new title, add an editor's commentary: one edit of the right message, TDLib-valid."""
    world = make_world(mode="digest" if mode == "digest" else "single", photo=mode == "photo",
                       select={"categories": ["技术"]})
    sent = articles_posted(world)
    assert len(sent) == (1 if mode == "digest" else 3)
    assert {m.method for m in sent} == {"sendPhoto" if mode == "photo" else "sendMessage"}
    target = holding(sent, ARTICLES[16102])
    untouched = [(m.message_id, m.plain_text) for m in sent if m is not target]

    write_article(world.archive, 16102, CORRECTED)
    world.ingest()
    assert world.run("comment", str(world.item_id(CORRECTED)), COMMENTARY)[0] == 0
    assert "edited 1" in world.publish()

    [edit] = world.fake.edits
    assert edit.method == ("editMessageCaption" if mode == "photo" else "editMessageText")
    assert (edit.chat_id, edit.message_id) == (CHAT, target.message_id)
    html = edit.caption if mode == "photo" else edit.text
    assert html is not None and edit.parse_mode == "HTML"
    photo = target.photo["value"] if target.photo else None
    assert_valid_message(Message(html, photo, [], visible_length(html)))
    shown = target.plain_text  # the fake's message, as edited
    assert CORRECTED in shown and COMMENTARY in shown and ARTICLES[16102] + "：" not in shown
    if mode == "digest":
        assert shown.startswith("硬核观察 #1") and ARTICLES[16101] in shown and ARTICLES[16103] in shown
    if mode == "photo":
        assert target.photo is not None and target.photo["value"].endswith("/16102.jpg")
    assert [(m.message_id, m.plain_text) for m in world.fake.replies(CHAT) if m is not target] == untouched

    rows = world.deliveries()
    row = row_of(rows, target.message_id)
    assert (row["edits"], row["edit_state"], row["edit_error"]) == (1, "done", None)
    assert row["last_edit_at"] is not None and row["content_hash"] == content_hash(html, photo)
    assert all(r["edits"] == 0 and r["edit_state"] is None for r in rows if r is not row)

    # Nothing changed since: publishing again edits nothing.
    world.publish()
    assert len(world.fake.edits) == 1 and len(world.fake.calls(edit.method)) == 1


def test_a_new_image_replaces_the_photo(make_world: Callable[..., World]) -> None:
    world = make_world(photo=True, select={"categories": ["技术"]})
    target = holding(articles_posted(world), ARTICLES[16103])
    write_article(world.archive, 16103, ARTICLES[16103], image="16103-new")
    world.ingest()
    world.publish()
    [edit] = world.fake.edits
    assert (edit.method, edit.message_id) == ("editMessageMedia", target.message_id)
    assert target.photo is not None and target.photo["value"].endswith("/16103-new.jpg")
    assert edit.media is not None and ARTICLES[16103] in (edit.caption or "")
    row = row_of(world.deliveries(), target.message_id)
    assert row["edits"] == 1 and row["content_hash"] == content_hash(edit.caption or "", target.photo["value"])


def test_a_channel_that_ignores_changes_is_not_edited(make_world: Callable[..., World]) -> None:
    world = make_world(on_change="ignore", select={"categories": ["技术"]})
    target = holding(articles_posted(world), ARTICLES[16102])
    before = target.plain_text
    write_article(world.archive, 16102, CORRECTED)
    world.ingest()
    world.publish()
    assert world.fake.edits == [] and world.fake.calls("editMessageText") == []
    assert target.plain_text == before
    assert row_of(world.deliveries(), target.message_id)["edits"] == 0


def test_an_edit_whose_answer_was_lost_is_made_again_and_not_modified_counts_as_done(
        make_world: Callable[..., World]) -> None:
    """Telegram applied the edit but the answer never came: it is made again; "not modified" is done."""
    world = make_world(select={"categories": ["技术"]})
    target = holding(articles_posted(world), ARTICLES[16102])
    world.fake.inject("editMessageText", "drop_after_accept", chat_id=CHAT)
    write_article(world.archive, 16102, CORRECTED)
    world.ingest()
    world.publish()

    requests = world.fake.calls("editMessageText")
    assert [r.status for r in requests] == [None, 400]  # the lost answer, then "not modified"
    assert requests[0].params["text"] == requests[1].params["text"]
    assert len(world.fake.edits) == 1 and CORRECTED in target.plain_text
    row = row_of(world.deliveries(), target.message_id)
    assert (row["edits"], row["edit_state"]) == (1, "done")
    assert "not modified" in row["edit_error"]
    assert world.fake.replies(ADMIN) == []


def test_a_message_deleted_in_the_channel_is_recorded_and_the_admins_told(make_world: Callable[..., World]) -> None:
    world = make_world(select={"categories": ["技术"]})
    target = holding(articles_posted(world), ARTICLES[16102])
    world.fake.remove_message(CHAT, target.message_id)  # a channel admin deleted it
    write_article(world.archive, 16102, CORRECTED)
    world.ingest()
    world.publish()

    [refused] = world.fake.calls("editMessageText")
    assert refused.status == 400 and world.fake.edits == []
    row = row_of(world.deliveries(), target.message_id)
    assert row["edit_state"] == "not_found" and "message to edit not found" in row["edit_error"].lower()
    assert row["edits"] == 0
    code, listing = world.run("deliveries")
    assert code == 0 and "not_found" in listing and "message to edit not found" in listing.lower()
    [notice] = [m.plain_text for m in world.fake.replies(ADMIN)]
    assert f"Post {row['id']} " in notice and "gone" in notice

    # The message is gone for good: later corrections do not try again.
    write_article(world.archive, 16102, CORRECTED + "二")
    world.ingest()
    world.publish()
    assert len(world.fake.calls("editMessageText")) == 1


def test_a_flood_wait_during_edits_is_obeyed(make_world: Callable[..., World]) -> None:
    world = make_world(select={"categories": ["技术"]})
    sent = articles_posted(world)
    world.fake.inject("editMessageText", "429", chat_id=CHAT, retry_after=2)
    for article_id, title in ARTICLES.items():
        write_article(world.archive, article_id, title + "（修订）")
    world.ingest()
    out = world.publish()

    [throttle] = world.fake.throttled
    accepted = [r for r in world.fake.calls("editMessageText") if r.status == 200]
    assert len(accepted) == 3 and len(world.fake.edits) == 3
    assert min(r.received_at for r in accepted) >= throttle.at + throttle.retry_after
    assert world.fake.early_retries == 0
    assert all("（修订）" in m.plain_text for m in sent)
    assert "flood waits 1" in out and "edited 3" in out
    assert all(r["edits"] == 1 for r in world.deliveries())


@pytest.mark.parametrize("age", ["fresh", "old in our record", "old at Telegram"])
def test_removed_items_are_deleted_within_48_hours(make_world: Callable[..., World], age: str) -> None:
    """on_remove: delete deletes the message of an item gone from the archive, while Telegram allows."""
    world = make_world(on_remove="delete", select={"categories": ["硬核观察"]})
    write_column(world.archive, STORIES)
    world.ingest()
    world.publish()
    target = holding(world.fake.replies(CHAT), STORIES[2].title)
    if age == "old in our record":
        def backdate(session: Any) -> None:
            post = session.scalars(select(Post).where(Post.message_id == target.message_id)).one()
            post.sent_at -= timedelta(hours=49)

        world.in_session(backdate)
    if age != "fresh":
        world.fake.age_message(CHAT, target.message_id, 49 * 3600)

    write_column(world.archive, STORIES[:2])  # the third story left the archive
    world.ingest()
    world.publish()

    row = row_of(world.deliveries(), target.message_id)
    if age == "fresh":
        assert world.fake.deleted == [(CHAT, target.message_id)] and target.deleted
        assert (row["edit_state"], row["edits"]) == ("deleted", 1)
    else:
        assert world.fake.deleted == [] and not target.deleted
        assert row["edit_state"] == "too_late" and row["edits"] == 0
        assert "48 hours" in row["edit_error"] or "can't be deleted" in row["edit_error"]
        # A request went out only when our own record did not already say it was too late.
        assert len(world.fake.calls("deleteMessage")) == (1 if age == "old at Telegram" else 0)
    assert world.fake.edits == []


def test_a_digest_loses_a_removed_item_by_an_edit(make_world: Callable[..., World]) -> None:
    world = make_world(mode="digest", on_remove="delete", select={"categories": ["硬核观察"]})
    write_column(world.archive, STORIES)
    world.ingest()
    world.publish()
    [digest] = world.fake.replies(CHAT)
    write_column(world.archive, [STORIES[0], STORIES[2]])
    world.ingest()
    world.publish()
    [edit] = world.fake.edits
    assert edit.message_id == digest.message_id and world.fake.deleted == []
    assert digest.plain_text.startswith("硬核观察 #1")
    assert STORIES[1].title not in digest.plain_text
    assert STORIES[0].title in digest.plain_text and STORIES[2].title in digest.plain_text


def test_removed_items_are_kept_by_default(make_world: Callable[..., World]) -> None:
    world = make_world(select={"categories": ["硬核观察"]})
    write_column(world.archive, STORIES)
    world.ingest()
    world.publish()
    write_column(world.archive, STORIES[:2])
    world.ingest()
    world.publish()
    assert world.fake.deleted == [] and world.fake.edits == []
    assert len([m for m in world.fake.replies(CHAT) if not m.deleted]) == 3


def test_a_new_commentary_in_the_document_edits_its_story(make_world: Callable[..., World]) -> None:
    world = make_world(select={"categories": ["硬核观察"]})
    write_column(world.archive, STORIES)
    world.ingest()
    world.publish()
    target = holding(world.fake.replies(CHAT), STORIES[1].title)
    write_column(world.archive, [STORIES[0], Story(STORIES[1].title, STORIES[1].body, "分叉未必是坏事。"),
                                 STORIES[2]])
    world.ingest()
    world.publish()
    [edit] = world.fake.edits
    assert edit.message_id == target.message_id
    assert "分叉未必是坏事。" in target.plain_text and "社区又要分叉了。" not in target.plain_text


def test_deliveries_are_unchanged_for_a_database_with_no_edits(make_world: Callable[..., World]) -> None:
    world = make_world(select={"categories": ["技术"]})
    articles_posted(world)
    db = open_database(world.db_url)
    try:
        with db.session() as session:
            stored = {p.message_id: p.html for p in session.scalars(select(Post))}
    finally:
        db.dispose()
    for row in world.deliveries():
        assert row["edits"] == 0 and row["edit_state"] is None and row["last_edit_at"] is None
        assert row["content_hash"] == content_hash(stored[row["message_id"]], None)


def test_a_photo_post_sent_as_text_is_edited_as_text(make_world: Callable[..., World]) -> None:
    """Telegram refused the photo, so the post went as text: its edit finds no caption and edits the text."""
    world = make_world(photo=True, select={"categories": ["技术"]})
    world.fake.inject("sendPhoto", "400", description="Bad Request: wrong file identifier/HTTP URL specified",
                      times=None)
    sent = articles_posted(world)
    assert {m.method for m in sent} == {"sendMessage"}
    target = holding(sent, ARTICLES[16102])
    write_article(world.archive, 16102, CORRECTED)
    world.ingest()
    world.publish()
    assert [(r.method, r.status) for r in world.fake.requests if r.method.startswith("edit")] == [
        ("editMessageCaption", 400), ("editMessageText", 200)]
    assert CORRECTED in target.plain_text
    row = row_of(world.deliveries(), target.message_id)
    assert (row["edits"], row["edit_state"]) == (1, "done")
    # The record learnt what the message is: the next correction goes straight to editMessageText.
    write_article(world.archive, 16102, CORRECTED + "二")
    world.ingest()
    world.publish()
    assert [r.method for r in world.fake.requests if r.method.startswith("edit")][-1] == "editMessageText"
    assert len([r for r in world.fake.requests if r.method.startswith("edit")]) == 3


def test_html_telegram_cannot_parse_is_edited_as_plain_text(make_world: Callable[..., World]) -> None:
    world = make_world(select={"categories": ["技术"]})
    target = holding(articles_posted(world), ARTICLES[16102])
    world.fake.inject("editMessageText", "400", description="Bad Request: can't parse entities: unsupported tag")
    write_article(world.archive, 16102, CORRECTED)
    world.ingest()
    world.publish()
    first, second = world.fake.calls("editMessageText")
    assert (first.status, first.params["parse_mode"]) == (400, "HTML")
    assert second.status == 200 and "parse_mode" not in second.params and "<b>" not in second.params["text"]
    assert CORRECTED in target.plain_text and not {e["type"] for e in target.entities} & {"bold", "text_link"}
    row = row_of(world.deliveries(), target.message_id)
    assert row["edit_state"] == "done" and "plain text" in row["edit_error"]


def test_a_kicked_bot_pauses_the_channel_and_keeps_the_edit(make_world: Callable[..., World]) -> None:
    world = make_world(select={"categories": ["技术"]})
    target = holding(articles_posted(world), ARTICLES[16102])
    world.fake.kick(CHAT)
    write_article(world.archive, 16102, CORRECTED)
    world.ingest()
    world.publish()
    assert world.fake.edits == []
    [notice] = [m.plain_text for m in world.fake.replies(ADMIN)]
    assert "tech is paused" in notice
    assert row_of(world.deliveries(), target.message_id)["edit_state"] == "pending"

    world.fake.unkick(CHAT)

    def resume(session: Any) -> None:
        from digests.store.channels import set_paused

        set_paused(session, "tech", False, actor="test")

    world.in_session(resume)
    world.publish()
    [edit] = world.fake.edits
    assert edit.message_id == target.message_id and CORRECTED in target.plain_text
    assert row_of(world.deliveries(), target.message_id)["edit_state"] == "done"


@pytest.mark.parametrize("on_change", ["edit", "ignore"])
def test_a_commentary_from_the_cli_says_which_messages_it_edits(make_world: Callable[..., World],
                                                                 on_change: str) -> None:
    world = make_world(on_change=on_change, select={"categories": ["技术"]})
    target = holding(articles_posted(world), ARTICLES[16102])
    code, out = world.run("comment", str(world.item_id(ARTICLES[16102])), "许可证之争远未结束。")
    assert code == 0
    if on_change == "edit":
        assert "the next `run` or `publish` edits it into the sent message in tech" in out
        assert edits_scraped(world) == {("tech", "edit", "done"): 0, ("tech", "edit", "pending"): 0}
        world.publish()
        assert "许可证之争远未结束。" in target.plain_text
        # /metrics counts it (read from the database at scrape time).
        assert edits_scraped(world) == {("tech", "edit", "done"): 1, ("tech", "edit", "pending"): 0}
    else:
        assert "kept as sent in tech (on_change: ignore)" in out
        world.publish()
        assert world.fake.edits == []


def edits_scraped(world: World) -> dict[tuple[str, str, str], float]:
    """What a /metrics scrape says of edits, for the states a user would look at."""
    from prometheus_client.parser import text_string_to_metric_families

    from bot.metrics import make_registry, render

    db = open_database(world.db_url)
    try:
        text = render(make_registry(db)).decode()
    finally:
        db.dispose()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "digestbot_message_edits"]
    return {(s.labels["channel"], s.labels["action"], s.labels["state"]): s.value for s in family.samples
            if s.labels["action"] == "edit" and s.labels["state"] in ("done", "pending")}
