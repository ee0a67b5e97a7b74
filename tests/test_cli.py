"""The `digestbot` command as a new user meets it: --version, help everywhere, -word searches, clear errors,
publish without --once, preview that is exactly what is sent, times shown alike in the CLI and the bot."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_application
from bot.cli import build_parser
from bot.cli import main as digestbot
from bot.config import BotConfig
from digests.formatting.times import format_time
from digests.ingest.pipeline import ingest
from digests.states import POST_STATES
from digests.store import open_database
from digests.store.db import Database
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import (
    ADMIN,
    COLUMN_ONE,
    COLUMN_TWO,
    config_data,
    make_config,
    posts,
    write_archive,
    write_config,
)

CHAT = -1001000000301


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
    assert ingest(database, [write_archive(tmp_path / "archive")]).items_new == 7
    yield database
    database.dispose()


@pytest.fixture
def fake(fake_bot_api: FakeBotApi) -> FakeBotApi:
    fake_bot_api.add_channel(CHAT, title="频道")
    fake_bot_api.add_user(ADMIN, first_name="Admin")
    return fake_bot_api


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = digestbot(list(args))
    except SystemExit as exc:  # argparse: --version, --help, usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def configure(tmp_path: Path, db: Database, fake: FakeBotApi, *, token: bool = True, **channel: Any) -> str:
    settings = {"name": "main", "chat_id": CHAT, "schedule": ["0 9 * * *"], "select": {"order": "oldest"}, **channel}
    data = config_data(db.url, base_url=fake.base_url, token=fake.token if token else "", channels=[settings])
    return str(write_config(tmp_path / "config.yaml", data))


# ---------------------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"digestbot {version('hardcore-digest')}")


def test_every_option_and_argument_has_help() -> None:
    def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    missing = []
    for parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{parser.prog} {c.dest}" for c in action._choices_actions if not c.help]
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_search_excludes_a_word_without_double_dash(db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", db.url)
    code, out, err = run(capsys, "search", "支持", "--json")
    assert code == 0, err
    both = {row["title"] for row in json.loads(out)}
    assert both == {"编译器支持新语言标准", "发行版放弃旧架构"}
    code, out, err = run(capsys, "search", "支持", "-编译器", "--json")
    assert code == 0, err
    assert [row["title"] for row in json.loads(out)] == ["发行版放弃旧架构"]
    code, _, err = run(capsys, "search", "支持", "--limt", "3")  # a mistyped option is still an error
    assert code == 2 and "unrecognized arguments: --limt 3" in err


def test_unknown_delivery_state_lists_the_states(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "deliveries", "--state", "bogus")
    assert code == 2 and "invalid choice: 'bogus'" in err
    assert all(state in err for state in POST_STATES)


def test_publish_without_once_publishes_one_slot(db: Database, fake: FakeBotApi, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = configure(tmp_path, db, fake, per_slot=2)
    code, out, err = run(capsys, "--config", config, "publish")
    assert code == 0, err
    assert "sent 2," in out and len(fake.replies(CHAT)) == 2
    _, helptext, _ = run(capsys, "publish", "--help")
    assert "the default" in " ".join(helptext.split())


@pytest.mark.parametrize(("mode", "per_slot", "limit", "items_per_post"),
                         [("digest", 3, 2, [3, 3]), ("single", 2, 3, [1, 1, 1])])
def test_preview_limit_is_posts_and_each_is_what_is_sent(db: Database, fake: FakeBotApi, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str], mode: str, per_slot: int,
                                                         limit: int, items_per_post: list[int]) -> None:
    """`preview --limit N`: the next N posts, each whole (a digest keeps its slot's items), as publish sends them."""
    config = configure(tmp_path, db, fake, mode=mode, per_slot=per_slot)
    code, out, err = run(capsys, "--config", config, "preview", "--json", "--limit", str(limit))
    assert code == 0, err
    shown = json.loads(out)
    assert [len(post["item_ids"]) for post in shown] == items_per_post
    while len(fake.calls("sendMessage")) < limit:
        assert run(capsys, "--config", config, "publish")[0] == 0
    sent = [call.params["text"] for call in fake.calls("sendMessage")][:limit]
    assert sent == [post["html"] for post in shown]
    if mode == "digest":
        assert [s.title in sent[0] for s in COLUMN_ONE] == [True] * 3 and sent[1].startswith("<b>硬核观察 #2")
        assert all(s.title in sent[1] for s in COLUMN_TWO)


def test_ingest_names_the_documents_without_items(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'd.db'}")
    feed = tmp_path / "archive" / "empty-feed.xml"
    feed.parent.mkdir()
    feed.write_text('<?xml version="1.0"?>\n<rss version="2.0"><channel><title>空的订阅</title>'
                    "<link>https://feed.example.org/</link><description>-</description></channel></rss>\n",
                    encoding="utf-8")
    code, out, err = run(capsys, "ingest", str(feed.parent))
    assert code == 0, err
    assert f"no items: {feed}" in out


@asynccontextmanager
async def polling(config: BotConfig, db: Database) -> AsyncIterator[Any]:
    application = build_application(config, db)
    async with application:
        await application.post_init(application)  # type: ignore[misc]
        await application.updater.start_polling(poll_interval=0.0, timeout=1)  # type: ignore[union-attr]
        await application.start()
        try:
            yield application
        finally:
            await application.updater.stop()  # type: ignore[union-attr]
            await application.stop()


def test_times_read_the_same_in_the_cli_and_the_bot(db: Database, fake: FakeBotApi, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The last post's time, in the channel's timezone, written alike by `stats`, `deliveries`, `channels`, /stats, /channels."""
    zone = "America/New_York"
    config = configure(tmp_path, db, fake, per_slot=1, timezone=zone)
    assert run(capsys, "--config", config, "publish")[0] == 0
    [post] = posts(db)
    when = format_time(post.sent_at, zone)
    assert when.endswith(("EST", "EDT"))
    for command in ("stats", "deliveries", "channels"):
        code, out, err = run(capsys, "--config", config, command)
        assert code == 0 and when in out, (command, out, err)

    bot_config = make_config(db.url, base_url=fake.base_url, token=fake.token,
                             channels=[{"name": "main", "chat_id": CHAT, "timezone": zone, "per_slot": 1}])

    async def ask_the_bot() -> list[str]:
        answers = []
        async with polling(bot_config, db):
            for command in ("/stats", "/channels"):
                before = len(fake.replies(ADMIN))
                fake.push_message(ADMIN, ADMIN, command)
                [answer] = (await fake.wait_for(ADMIN, before + 1))[before:]
                answers.append(answer.plain_text)
        return answers

    for answer in asyncio.run(ask_the_bot()):
        assert when in answer, answer
