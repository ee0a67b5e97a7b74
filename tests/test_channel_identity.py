"""A channel is its chat: renamed, removed, restored or named twice in config.yaml, no item reaches a chat twice.

End to end: `digestbot publish --once` (the cron user's command) against the fake Bot API over
HTTP, on SQLite and PostgreSQL, config.yaml edited between runs as an operator would.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main as digestbot
from digests import actions
from digests.errors import ConfigError
from digests.formatting.render import make_renderer
from digests.ingest.pipeline import ingest
from digests.publishing.planning import plan_slot
from digests.states import PENDING
from digests.store import open_database
from digests.store.db import Database
from tests.fakebotapi import FakeBotApi, SentMessage
from tests.publishing_helpers import (
    ADMIN,
    COLUMN_ONE,
    COLUMN_TWO,
    TECH_TITLE,
    config_data,
    make_config,
    posts,
    running_application,
    titles_in,
    write_archive,
    write_config,
)

CHAT, OTHER = -1001000000101, -1001000000102
USERNAME = "hc_identity"
ALL_TITLES = [s.title for s in COLUMN_ONE + COLUMN_TWO] + [TECH_TITLE]  # the archive's order, oldest first


@pytest.fixture
def db(db_url: str, tmp_path: Path):
    database = open_database(db_url)
    report = ingest(database, [write_archive(tmp_path / "archive")])
    assert report.items_new == len(ALL_TITLES)
    yield database
    database.dispose()


@pytest.fixture
def fake(fake_bot_api: FakeBotApi) -> FakeBotApi:
    fake_bot_api.add_channel(CHAT, username=USERNAME, title="主频道")
    fake_bot_api.add_channel(OTHER, title="另一个")
    fake_bot_api.add_user(ADMIN, first_name="Admin")
    return fake_bot_api


class Operator:
    """Edits config.yaml and runs digestbot, as the person with the cron job does."""

    def __init__(self, db: Database, fake: FakeBotApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db, self.fake, self.capsys = db, fake, capsys
        self.path = tmp_path / "config.yaml"

    def configure(self, *channels: dict[str, Any], token: bool = True) -> None:
        write_config(self.path, config_data(self.db.url, base_url=self.fake.base_url,
                                            token=self.fake.token if token else "", channels=list(channels)))

    def run(self, *args: str) -> tuple[int, str, str]:
        code = digestbot(["--config", str(self.path), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def publish(self) -> None:
        code, _out, err = self.run("publish", "--once")
        assert code == 0, err

    def channels(self) -> dict[str, dict[str, Any]]:
        code, out, err = self.run("channels", "--json")
        assert code == 0, err
        rows = json.loads(out)
        assert len({row["name"] for row in rows}) == len(rows), rows
        return {row["name"]: row for row in rows}


@pytest.fixture
def operator(db: Database, fake: FakeBotApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Operator:
    return Operator(db, fake, tmp_path, capsys)


def channel(name: str, chat: int | str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "chat_id": chat, "per_slot": 2, "schedule": ["0 9 * * *"], "select": {"order": "oldest"},
            **settings}


def titles(messages: list[SentMessage]) -> list[str]:
    return [title for m in messages for title in titles_in(m.plain_text, ALL_TITLES)]


def assert_each_once(messages: list[SentMessage]) -> None:
    repeated = [title for title, count in Counter(titles(messages)).items() if count > 1]
    assert repeated == [], f"posted to the chat twice: {repeated}"


# ---------------------------------------------------------------------------------------------


def test_renamed_channel_keeps_its_history_and_numbers(operator: Operator, fake: FakeBotApi) -> None:
    """`main` renamed `column` (same chat): the next publish goes on with the next items and digest #2."""
    operator.configure(channel("main", CHAT, mode="digest"))
    operator.publish()
    operator.configure(channel("column", CHAT, mode="digest"))
    operator.publish()

    sent = fake.replies(CHAT)
    assert_each_once(sent)
    assert titles(sent) == ALL_TITLES[:4]
    assert [m.plain_text.splitlines()[0] for m in sent] == ["硬核观察 #1", "硬核观察 #2"]
    shown = operator.channels()
    assert set(shown) == {"column"}
    assert (shown["column"]["state"], shown["column"]["chat_key"]) == ("active", str(CHAT))
    # Its audit log says what happened, under the name it has now.
    code, out, _ = operator.run("channels", "log", "column", "--json")
    assert code == 0
    assert [(e["action"], e["detail"]) for e in json.loads(out)] == [
        ("rename", {"before": "main", "after": "column"})]


def test_username_is_resolved_and_remembered_as_the_chat(operator: Operator, fake: FakeBotApi) -> None:
    """A dry run knows the channel by its @username; with a token it is the chat getChat names, whatever form config uses."""
    operator.configure(channel("main", f"@{USERNAME}"), token=False)
    assert operator.run("publish", "--once")[0] == 0  # dry run: shown, recorded as dry-run, nothing consumed
    assert operator.channels()["main"]["chat_key"] == f"@{USERNAME}"

    operator.configure(channel("main", f"@{USERNAME.upper()}"))
    operator.publish()
    assert [r.params.get("chat_id") for r in fake.calls("getChat")] == [f"@{USERNAME.upper()}"]
    assert operator.channels()["main"]["chat_key"] == str(CHAT)

    operator.configure(channel("renamed", CHAT))  # the numeric id this time, and a new name
    operator.publish()
    sent = fake.replies(CHAT)
    assert_each_once(sent)
    assert titles(sent) == ALL_TITLES[:4]
    assert set(operator.channels()) == {"renamed"}


def test_removed_channel_retires_and_resumes_where_it_stopped(operator: Operator, db: Database,
                                                             fake: FakeBotApi) -> None:
    """Gone from config.yaml: nothing more is posted to it, planned posts wait; back: it goes on, nothing twice."""
    operator.configure(channel("main", CHAT, per_slot=1), channel("side", OTHER, per_slot=1))
    operator.publish()
    # A slot of `side` planned but not yet sent when the operator removes it.
    [waiting] = plan_slot(db, "side", make_renderer())
    operator.configure(channel("main", CHAT, per_slot=1))
    operator.publish()
    operator.publish()

    assert titles(fake.replies(OTHER)) == ALL_TITLES[:1]
    assert titles(fake.replies(CHAT)) == ALL_TITLES[:3]
    assert {p.id: p.state for p in posts(db)}[waiting.id] == PENDING
    side = operator.channels()["side"]
    assert (side["state"], side["reason"], side["queue"], side["next_slot"]) == (
        "retired", "not in config.yaml", 1, None)
    code, _, err = operator.run("publish", "--once", "--channel", "side")
    assert code == 2 and "side" in err and "retired" in err
    code, _, err = operator.run("channels", "resume", "side")
    assert code == 2 and "put it back in config.yaml" in err

    operator.configure(channel("main", CHAT, per_slot=1), channel("side", OTHER, per_slot=1))
    operator.publish()
    assert operator.channels()["side"]["state"] == "active"
    side_sent = fake.replies(OTHER)
    assert_each_once(side_sent)
    # The post planned before it retired goes first, then the next slot: no backlog, no gap.
    assert titles(side_sent) == ALL_TITLES[:3]
    code, out, _ = operator.run("channels", "log", "side", "--json")
    assert [e["action"] for e in json.loads(out)] == ["retire", "restore"]


def test_same_chat_under_two_names_stops_start_up(operator: Operator, db: Database, fake: FakeBotApi) -> None:
    """Two names for one chat would post everything to it twice: refused, naming both keys."""
    operator.configure(channel("main", CHAT), channel("column", CHAT))
    code, _, err = operator.run("publish", "--once")
    assert code == 2
    assert f"channels[1:column].chat_id: '{CHAT}' is also the chat of channels[0:main]" in err
    assert "Traceback" not in err
    operator.configure(channel("main", CHAT), channel("column", f"@{USERNAME}"))  # the same chat, only Telegram knows
    code, _, err = operator.run("publish", "--once")
    assert code == 2
    assert (f"channels[1:column].chat_id: '@{USERNAME}' is also the chat of channels[0:main] (both are chat {CHAT})"
            in err)
    assert fake.sent == [] and posts(db) == []
    assert operator.channels() == {}


def test_overrides_and_audit_log_follow_a_rename(operator: Operator, db: Database, fake: FakeBotApi) -> None:
    """An admin's /schedule and a pause stay with the channel through a rename; resume from the CLI."""
    operator.configure(channel("main", CHAT))
    operator.publish()
    actions.set_schedule(db, "main", ["30 7 * * *"], actor=f"tg:{ADMIN}")  # what /schedule does
    assert operator.run("channels", "pause", "main", "--reason", "holiday")[0] == 0
    operator.configure(channel("column", CHAT))
    operator.publish()
    assert len(fake.replies(CHAT)) == 2  # paused: nothing more

    column = operator.channels()["column"]
    assert (column["state"], column["reason"], column["schedule"]) == ("paused", "holiday", ["30 7 * * *"])
    code, out, _ = operator.run("channels", "log", "column", "--json")
    log = json.loads(out)
    assert [(e["action"], e["target"]) for e in log] == [
        ("schedule", "channel:main"), ("pause", "channel:main"), ("rename", "channel:column")]
    assert log[1]["actor"].startswith("cli:")

    code, out, _ = operator.run("channels", "resume", "column")
    assert code == 0 and "was paused (holiday)" in out
    operator.publish()
    sent = fake.replies(CHAT)
    assert_each_once(sent)
    assert titles(sent) == ALL_TITLES[:4]


def test_cli_resumes_a_channel_a_403_paused(operator: Operator, fake: FakeBotApi) -> None:
    """The bot was removed from the channel: publish pauses it; a cron-only operator resumes it with the CLI."""
    operator.configure(channel("main", CHAT))
    fake.kick(CHAT)
    code, _, err = operator.run("publish", "--once")
    assert "main is paused" in err
    main = operator.channels()["main"]
    assert main["state"] == "paused" and "kicked" in main["reason"] and main["queue"] == 2

    fake.unkick(CHAT)
    code, out, _ = operator.run("channels", "resume", "main")
    assert code == 0 and "posting again" in out
    operator.publish()
    sent = fake.replies(CHAT)
    assert_each_once(sent)
    assert titles(sent) == ALL_TITLES[:4]  # the two kept posts, then the next slot


def test_retired_by_hand_stays_retired_until_resumed(operator: Operator, fake: FakeBotApi) -> None:
    operator.configure(channel("main", CHAT))
    operator.publish()
    code, out, _ = operator.run("channels", "retire", "main")
    assert code == 0 and "retired" in out
    operator.publish()  # still in config.yaml: a retirement by hand holds all the same
    assert len(fake.replies(CHAT)) == 2
    assert operator.channels()["main"]["state"] == "retired"
    assert operator.run("channels", "resume", "main")[0] == 0
    operator.publish()
    assert titles(fake.replies(CHAT)) == ALL_TITLES[:4]


def test_listing_shows_state_next_slot_and_last_post(operator: Operator) -> None:
    operator.configure(channel("main", CHAT, timezone="Asia/Shanghai", schedule=["0 9 * * *"]))
    operator.publish()
    code, out, _ = operator.run("channels")
    assert code == 0
    line = next(line for line in out.splitlines() if "main" in line)
    assert str(CHAT) in line and "active" in line and "09:00 CST" in line
    [row] = operator.channels().values()
    assert row["next_slot"].endswith("+08:00") and "T09:00:00" in row["next_slot"]
    assert row["queue"] == 0 and row["last_message_id"] is not None


async def test_bot_start_up_schedules_active_channels_only_and_refuses_one_chat_twice(db: Database,
                                                                                     fake: FakeBotApi) -> None:
    """`digestbot run`'s start-up: a channel gone from config.yaml gets no slot jobs; an @username that is
    another channel's chat stops it."""
    def config(*channels: dict[str, Any]) -> Any:
        return make_config(db.url, base_url=fake.base_url, token=fake.token, channels=list(channels))

    async with running_application(config(channel("main", CHAT), channel("side", OTHER)), db):
        pass
    async with running_application(config(channel("main", CHAT)), db) as application:
        jobs = {job.name for job in application.job_queue.jobs()}
    assert "slot:main:0" in jobs and not [name for name in jobs if name.startswith("slot:side")]
    with pytest.raises(ConfigError, match=r"channels\[1:column\]\.chat_id: '@hc_identity' is also the chat of "
                                          r"channels\[0:main\]"):
        async with running_application(config(channel("main", CHAT), channel("column", f"@{USERNAME}")), db):
            pass


def test_name_given_to_another_chat_is_another_channel(operator: Operator, fake: FakeBotApi) -> None:
    """`main` pointed at a new chat: that chat starts from the beginning, the old chat's row retires with its history."""
    operator.configure(channel("main", CHAT))
    operator.publish()
    operator.configure(channel("main", OTHER))
    operator.publish()
    assert titles(fake.replies(OTHER)) == ALL_TITLES[:2]
    assert titles(fake.replies(CHAT)) == ALL_TITLES[:2]
    code, out, _ = operator.run("channels", "--json")
    assert [(row["name"], row["chat_key"], row["state"], row["reason"]) for row in json.loads(out)] == [
        ("main", str(OTHER), "active", None),
        ("main", str(CHAT), "retired", f"config.yaml gives its name to chat {OTHER}")]

    operator.configure(channel("main", CHAT))  # and back: the first chat goes on where it stopped
    operator.publish()
    assert titles(fake.replies(CHAT)) == ALL_TITLES[:4]
