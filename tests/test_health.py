"""/healthz and `digestbot health`: the database, the scheduler's heartbeat, stuck channels."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main as digestbot
from digests.health import ChannelFacts, HealthFacts, decide
from digests.store import open_database
from digests.store.channels import set_paused
from digests.store.db import Database
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import config_data, insert_items, make_config, write_config
from tests.service_helpers import FAST_SERVER, eventually, serving

fake_bot_api = fakebotapi.fake_bot_api
ROOT = Path(__file__).resolve().parent.parent
MAIN, OTHER = -1001000000101, -1001000000102
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
    yield database
    database.dispose()


def two_channels() -> list[dict[str, object]]:
    return [{"name": "main", "chat_id": MAIN, "schedule": ["0 9 * * *"], "per_slot": 1},
            {"name": "other", "chat_id": OTHER, "schedule": ["0 9 * * *"], "per_slot": 1}]


def service_config(db: Database, fake: FakeBotApi, **sections: dict[str, object]):
    return make_config(db.url, base_url=fake.base_url, token=fake.token, channels=two_channels(),
                       server=FAST_SERVER, **sections)


# ---------------------------------------------------------------------------------------------
# the decider


def channel(name: str = "main", **kwargs: object) -> ChannelFacts:
    values: dict[str, object] = dict(name=name, paused=False, paused_by_error=False, paused_reason=None,
                                     waiting_since=None, first_waiting=None, first_error=None, last_sent_at=None)
    values.update(kwargs)
    return ChannelFacts(**values)  # type: ignore[arg-type]


def verdict(*channels: ChannelFacts, beats: dict[str, datetime] | None = None, **kwargs: object):
    facts = HealthFacts(revision="0004", head_revision="0004", channels=list(channels),
                        heartbeats={"host:1": NOW - 10 * timedelta(seconds=1)} if beats is None else beats)
    return decide(facts, NOW, stuck_after=30 * MINUTE, heartbeat_every=timedelta(seconds=30), **kwargs)


def test_a_queue_that_moves_is_not_stuck_one_that_does_not_is() -> None:
    assert verdict(channel(waiting_since=NOW - 29 * MINUTE, first_waiting=7)).ok
    # A long queue (a backlog at 20 posts a minute) still sending: not stuck.
    assert verdict(channel(waiting_since=NOW - 90 * MINUTE, first_waiting=7, last_sent_at=NOW - MINUTE)).ok
    stuck = verdict(channel(waiting_since=NOW - 45 * MINUTE, first_waiting=7, last_sent_at=NOW - 40 * MINUTE,
                            first_error="flood control: retry after 3600s"))
    assert not stuck.ok
    assert stuck.reasons == ["channel main: post 7 waiting for 45 min and nothing sent for 40 min "
                             "(last error: flood control: retry after 3600s)"]
    assert stuck.checks["channels"] == {"main": stuck.reasons[0].removeprefix("channel main: ")}


def test_a_pause_by_an_error_is_unhealthy_a_pause_by_an_admin_is_not() -> None:
    by_admin = channel(paused=True, paused_reason="paused by tg:1", waiting_since=NOW - 600 * MINUTE)
    assert verdict(by_admin).ok
    by_error = channel(paused=True, paused_by_error=True, paused_reason="the bot cannot post in -100: Forbidden")
    assert verdict(by_error).reasons == ["channel main: paused by an error: the bot cannot post in -100: Forbidden"]


def test_the_scheduler_counts_only_the_given_workers_heartbeats() -> None:
    beats = {"vm:123": NOW - timedelta(seconds=5), "other:9": NOW - timedelta(seconds=5)}
    assert verdict(beats=beats, workers="vm:123").ok
    assert verdict(beats=beats, workers="vm:").ok
    assert verdict(beats=beats, workers="vm:12").checks["scheduler"] == "missing"  # a prefix of a pid is not it
    stale = verdict(beats={"vm:1": NOW - timedelta(seconds=91)}, workers="vm:")
    assert stale.reasons == ["scheduler: the last heartbeat is 91 s old (one is due every 30 s)"]
    assert verdict(beats={}, require_scheduler=False).ok


def test_a_database_that_does_not_answer_is_the_only_reason_given() -> None:
    result = decide(HealthFacts(database_error="OperationalError: connection refused"), NOW,
                    stuck_after=MINUTE, heartbeat_every=MINUTE)
    assert (result.ok, result.reasons) == (False, ["database: OperationalError: connection refused"])
    behind = decide(HealthFacts(revision="0003", head_revision="0004", heartbeats={"h:1": NOW}), NOW,
                    stuck_after=MINUTE, heartbeat_every=MINUTE)
    assert behind.reasons == ["database: schema at revision 0003, this digestbot expects 0004 (digestbot db upgrade)"]


def test_the_facts_and_counts_read_alike_on_sqlite_and_postgresql(db_url: str) -> None:
    """The store's queries (a CASE under MIN, the audit lookup, GROUP BYs) on both backends."""
    from digests.formatting.render import make_renderer
    from digests.publishing.planning import plan_slot
    from digests.store.health import read_health_facts
    from digests.store.metrics import read_metric_counts
    from tests.publishing_helpers import sync

    database = open_database(db_url)
    try:
        config = make_config(db_url, base_url="http://127.0.0.1:9/bot", token="1:x", channels=two_channels())
        sync(database, config)
        insert_items(database, 3)
        planned_at = datetime.now(UTC) - 45 * MINUTE
        assert len(plan_slot(database, "main", make_renderer(), now=planned_at)) == 1
        with database.session() as session:
            set_paused(session, "other", True, actor="publisher", reason="the bot cannot post in -1: Forbidden")
        facts = read_health_facts(database)
        head = database.head_revision()  # the newest migration, whichever it is
        assert (facts.database_error, facts.revision, facts.head_revision) == (None, head, head)
        main, other = facts.channels
        assert main.waiting_since == planned_at and main.first_waiting is not None and not main.paused
        assert other.paused and other.paused_by_error
        result = decide(facts, datetime.now(UTC), stuck_after=30 * MINUTE, heartbeat_every=MINUTE,
                        require_scheduler=False)
        assert [r.split(":")[0] for r in result.reasons] == ["channel main", "channel other"]
        counts = read_metric_counts(database)
        assert counts.posts == {("main", "pending"): 1}
        assert counts.paused == {"main": False, "other": True}
        assert counts.items == {"linuxcn": 3}
    finally:
        database.dispose()


# ---------------------------------------------------------------------------------------------
# /healthz of a running bot


def _ok(result: tuple[int, dict]) -> bool:
    return result[0] == 200


async def test_healthz_turns_503_when_telegram_refuses_the_channel_and_names_it(db: Database,
                                                                                fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.add_channel(MAIN)
    fake_bot_api.add_channel(OTHER)
    insert_items(db, 2)
    async with serving(service_config(db, fake_bot_api), db) as served:
        status, body = await eventually(served.health, _ok)
        assert body == {"status": "ok", "reasons": [],
                        "checks": {"database": "ok", "scheduler": "ok", "channels": {"main": "ok", "other": "ok"}}}
        # An admin's pause is a decision, not a fault.
        with db.session() as session:
            set_paused(session, "other", True, actor="tg:1", reason="holiday")
        assert (await served.health())[0] == 200

        fake_bot_api.kick(MAIN)  # the bot was removed from the channel: 403 on the next send
        await served.application.bot_data["publisher"].post_now("main")
        status, body = await served.health()
        assert status == 503
        assert body["status"] == "unhealthy"
        assert body["checks"]["channels"]["other"] == "paused"
        [reason] = body["reasons"]
        assert reason.startswith(f"channel main: paused by an error: the bot cannot post in {MAIN}: Forbidden")


async def test_healthz_turns_503_for_a_post_due_too_long_and_back_to_200_once_it_is_sent(
        db: Database, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.add_channel(MAIN)
    fake_bot_api.add_channel(OTHER)
    insert_items(db, 1)
    fake_bot_api.inject("sendMessage", "5xx", times=None, status=502)
    # Retried every second at most, and never given up on while the test runs (a slow machine included).
    config = service_config(db, fake_bot_api, publish={"max_attempts": 1000})
    async with serving(config, db) as served:
        await eventually(served.health, _ok)
        await served.application.bot_data["publisher"].post_now("main")  # 502: retried, never sent
        status, body = await eventually(served.health, lambda r: r[0] == 503)
        [reason] = body["reasons"]
        assert reason.startswith("channel main: post 1 waiting for ")
        assert "nothing sent for ever (last error: " in reason
        fake_bot_api.clear_faults()  # the drain job's next retry gets through
        await eventually(served.health, _ok)
        assert len(fake_bot_api.replies(MAIN)) == 1


async def test_healthz_turns_503_when_the_scheduler_stops(db: Database, fake_bot_api: FakeBotApi) -> None:
    async with serving(service_config(db, fake_bot_api), db) as served:
        await eventually(served.health, _ok)
        assert served.application.job_queue is not None
        await served.application.job_queue.stop()
        status, body = await eventually(served.health, lambda r: r[0] == 503)
        [reason] = body["reasons"]
        assert reason.startswith("scheduler: the last heartbeat is ") and body["checks"]["scheduler"] == "stale"


async def test_healthz_turns_503_when_the_database_is_gone(db: Database, fake_bot_api: FakeBotApi,
                                                           tmp_path: Path) -> None:
    async with serving(service_config(db, fake_bot_api), db) as served:
        await eventually(served.health, _ok)
        for name in ("digest.db", "digest.db-wal", "digest.db-shm"):
            (tmp_path / name).rename(tmp_path / f"moved-{name}")
        status, body = await served.health()
        assert status == 503
        assert body["reasons"] == [f"database: no database file at {tmp_path / 'digest.db'}"]
        metrics = await served.metrics()  # /metrics still answers, and says so
        assert metrics[("digestbot_database_up", ())] == 0


# ---------------------------------------------------------------------------------------------
# digestbot health


def _health_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(config), "health", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_health_command_exit_codes_without_a_running_bot(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    config = write_config(tmp_path / "config.yaml", config_data(url, base_url="http://127.0.0.1:9/bot",
                                                                token="1:x", channels=two_channels()))
    missing = _health_cli(config)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"unhealthy: database: no database file at {tmp_path / 'digest.db'}"
    assert not (tmp_path / "digest.db").exists()  # a health check never creates a database

    assert digestbot(["--config", str(config), "db", "upgrade"]) == 0
    capsys.readouterr()
    assert digestbot(["--config", str(config), "health"]) == 1
    assert "unhealthy: scheduler: no heartbeat from a running `digestbot run`" in capsys.readouterr().err
    assert digestbot(["--config", str(config), "health", "--no-scheduler"]) == 0
    assert capsys.readouterr().out == "ok\n"
    assert digestbot(["--config", str(config), "health", "--no-scheduler", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"status": "ok", "reasons": [],
                                                   "checks": {"database": "ok", "channels": {}}}


async def test_health_command_is_ok_while_a_bot_runs_on_this_host_and_not_after(
        db: Database, fake_bot_api: FakeBotApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_bot_api.add_channel(MAIN)
    fake_bot_api.add_channel(OTHER)
    data = config_data(db.url, base_url=fake_bot_api.base_url, token=fake_bot_api.token, channels=two_channels(),
                       server=FAST_SERVER)
    path = write_config(tmp_path / "config.yaml", data)
    async with serving(make_config(db.url, base_url=fake_bot_api.base_url, token=fake_bot_api.token,
                                   channels=two_channels(), server=FAST_SERVER), db) as served:
        await eventually(served.health, _ok)
        assert await asyncio.to_thread(digestbot, ["--config", str(path), "health"]) == 0
        assert capsys.readouterr().out == "ok\n"
        # Another process on this host, as Docker's HEALTHCHECK runs it beside `digestbot run`.
        assert (await asyncio.to_thread(_health_cli, path)).returncode == 0
    # Stopped cleanly: its heartbeat went with it.
    assert await asyncio.to_thread(digestbot, ["--config", str(path), "health"]) == 1
    assert "no heartbeat" in capsys.readouterr().err
