"""An editor's /comment on a posted item edits its post: the running bot, polling the fake Bot API."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot.app import build_application
from digests.ingest.pipeline import ingest
from digests.store import open_database
from digests.store.models import Item, Post
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import ADMIN, COLUMN_ONE, make_config, posts, write_archive

fake_bot_api = fakebotapi.fake_bot_api

CHAT = -1004000000002


async def test_comment_on_a_posted_item_edits_its_message(fake_bot_api: FakeBotApi, tmp_path: Path) -> None:
    fake_bot_api.add_channel(CHAT, title="硬核观察")
    fake_bot_api.add_user(ADMIN, first_name="Editor")
    db = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
    ingest(db, [write_archive(tmp_path / "archive")])
    channel = {"name": "column", "chat_id": CHAT, "per_slot": 3, "select": {"categories": ["硬核观察"]}}
    config = make_config(db.url, base_url=fake_bot_api.base_url, token=fake_bot_api.token, channels=[channel])
    with db.session() as session:
        story = session.scalars(select(Item.id).where(Item.title == COLUMN_ONE[1].title)).one()

    application = build_application(config, db)
    async with application:
        assert application.post_init is not None and application.updater is not None
        await application.post_init(application)
        await application.updater.start_polling(poll_interval=0.0, timeout=1)
        await application.start()
        try:
            await application.bot_data["publisher"].run_slot("column")
            sent = await fake_bot_api.wait_for(CHAT, 3)
            fake_bot_api.push_message(ADMIN, ADMIN, f"/comment {story} 许可证之争远未结束。")
            [reply] = await fake_bot_api.wait_for(ADMIN, 1)
            # zh_CN: the admin chose no language. The reply names the channel whose message is edited.
            assert reply.plain_text == f"已保存条目 {story} 的点评。\ncolumn 中已发出的消息会改为显示它。"
            # The drain job (every 0.2 s here) sees the new commentary and edits the post.
            await fake_bot_api.wait_until(lambda: len(fake_bot_api.edits) >= 1, timeout=10)
        finally:
            await application.updater.stop()
            await application.stop()

    [edit] = fake_bot_api.edits
    [target] = [m for m in sent if COLUMN_ONE[1].title in m.plain_text]
    assert (edit.method, edit.chat_id, edit.message_id) == ("editMessageText", CHAT, target.message_id)
    assert "许可证之争远未结束。" in target.plain_text and COLUMN_ONE[1].commentary not in target.plain_text
    [post] = [p for p in posts(db) if p.message_id == target.message_id]
    assert isinstance(post, Post) and post.edit_count == 1 and post.edit_state == "done"
    assert "许可证之争远未结束。" in post.html
    db.dispose()
