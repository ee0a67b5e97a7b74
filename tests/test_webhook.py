"""Webhook mode: Telegram posts updates to the bot's server, which takes only those with the secret."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import build_application
from bot.cli.publish import SAMPLE_ARCHIVE
from bot.config import BotConfig, config_from_mapping, load_config
from bot.webhook import webhook_arguments
from digests.errors import ConfigError, DigestError
from digests.ingest.pipeline import ingest
from digests.store import open_database
from digests.store.db import Database
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi

fake_bot_api = fakebotapi.fake_bot_api  # the shared fixture

ROOT = Path(__file__).resolve().parent.parent
USER = 2002
SECRET = "webhook_Secret-42"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def message_update(update_id: int, text: str, user: int = USER) -> dict[str, Any]:
    """An update as Telegram posts it: a private message, a leading /command marked as one."""
    command = text.split()[0]
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": int(time.time()), "text": text,
        "chat": {"id": user, "type": "private", "first_name": "Reader"},
        "from": {"id": user, "is_bot": False, "first_name": "Reader"},
        "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
    }}


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("webhook") / "digest.db"
    db = open_database(f"sqlite:///{path}")
    assert ingest(db, [SAMPLE_ARCHIVE]).items_new > 0
    db.dispose()
    return path


@pytest.fixture
def store(sample_db: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{sample_db}")
    yield db
    db.dispose()


def bot_config(fake: FakeBotApi, db_path: Path, webhook: dict[str, Any] | None) -> BotConfig:
    telegram: dict[str, Any] = {"token": fake.token, "base_url": fake.base_url, "request_timeout": 5}
    if webhook is not None:
        telegram["webhook"] = webhook
    return config_from_mapping({"database": {"url": f"sqlite:///{db_path}"}, "telegram": telegram,
                                "log_level": "WARNING"})


# ---------------------------------------------------------------------------------------------
# The config


def webhook_error(tmp_path: Path, webhook: str, telegram: str = "") -> str:
    path = tmp_path / "config.yaml"
    path.write_text(f"telegram:\n  {telegram}webhook: {webhook}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return str(caught.value)


def test_a_webhook_without_a_secret_is_refused_with_an_example(tmp_path: Path) -> None:
    message = webhook_error(tmp_path, "{url: 'https://bot.example.org/telegram'}")
    assert "telegram.webhook.secret_token: required" in message
    assert "secrets.token_urlsafe(32)" in message and "DIGESTBOT_TELEGRAM__WEBHOOK__SECRET_TOKEN" in message


def test_a_secret_telegram_would_refuse_is_refused(tmp_path: Path) -> None:
    message = webhook_error(tmp_path, "{url: 'https://bot.example.org/t', secret_token: 'has spaces'}")
    assert "telegram.webhook.secret_token: may hold only A-Z a-z 0-9 _ -" in message


def test_telegram_posts_only_to_https_on_its_ports(tmp_path: Path) -> None:
    message = webhook_error(tmp_path, f"{{url: 'http://bot.example.org/t', secret_token: {SECRET}}}")
    assert "telegram.webhook: url 'http://bot.example.org/t': Telegram posts updates only to https://" in message
    message = webhook_error(tmp_path, f"{{url: 'https://bot.example.org:9000/t', secret_token: {SECRET}}}")
    assert "on port 443, 80, 88 or 8443" in message
    # A local Bot API server posts anywhere.
    path = tmp_path / "local.yaml"
    path.write_text(f"telegram:\n  base_url: http://127.0.0.1:8081/bot\n  webhook: "
                    f"{{url: 'http://127.0.0.1:9000/t', secret_token: {SECRET}}}\n", encoding="utf-8")
    assert load_config(path, env={}).telegram.webhook is not None


def test_the_path_defaults_to_the_urls(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"telegram:\n  webhook: {{url: 'https://bot.example.org/tg/updates', secret_token: {SECRET}}}\n",
                    encoding="utf-8")
    webhook = load_config(path, env={}).telegram.webhook
    assert webhook is not None
    assert (webhook.path, webhook.listen, webhook.port) == ("/tg/updates", "127.0.0.1", 8443)
    assert webhook_arguments(webhook)["secret_token"] == SECRET


# ---------------------------------------------------------------------------------------------
# The fake answers as Telegram does


async def test_the_fake_refuses_getupdates_while_a_webhook_is_set(fake_bot_api: FakeBotApi) -> None:
    from telegram import Bot
    from telegram.error import Conflict

    async with Bot(fake_bot_api.token, base_url=fake_bot_api.base_url, request=fakebotapi.ptb_request()) as bot:
        assert await bot.set_webhook("https://bot.example.org/t", secret_token=SECRET)
        assert (await bot.get_webhook_info()).url == "https://bot.example.org/t"
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        assert await bot.delete_webhook()
        assert await bot.get_updates() == ()
    assert fake_bot_api.webhook is None


# ---------------------------------------------------------------------------------------------
# In process: PTB's webhook server, then polling again


async def test_webhook_takes_only_updates_with_the_secret_then_polling_deletes_it(
        fake_bot_api: FakeBotApi, store: Database, sample_db: Path) -> None:
    fake_bot_api.add_user(USER, first_name="Reader")
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    config = bot_config(fake_bot_api, sample_db, {"url": url, "port": port, "secret_token": SECRET})
    assert config.telegram.webhook is not None
    application = build_application(config, store)
    async with application:
        assert application.updater is not None and application.post_init is not None
        await application.post_init(application)
        await application.updater.start_webhook(**webhook_arguments(config.telegram.webhook))
        await application.start()
        try:
            [set_webhook] = fake_bot_api.calls("setWebhook")
            assert (set_webhook.params["url"], set_webhook.params["secret_token"]) == (url, SECRET)
            async with httpx.AsyncClient(timeout=5) as client:
                wrong = await client.post(url, json=message_update(1, "/search 数据库"),
                                          headers={SECRET_HEADER: "not-the-secret"})
                missing = await client.post(url, json=message_update(2, "/search 数据库"))
                right = await client.post(url, json=message_update(3, "/search 开源"),
                                          headers={SECRET_HEADER: SECRET})
            assert (wrong.status_code, missing.status_code, right.status_code) == (403, 403, 200)
            [answer] = await fake_bot_api.wait_for(USER, 1)
            assert "开源" in answer.plain_text
        finally:
            await application.updater.stop()
            await application.stop()
    assert len(fake_bot_api.replies(USER)) == 1, "an update without the secret was answered"
    assert fake_bot_api.webhook is not None and not fake_bot_api.calls("deleteWebhook")

    polling = build_application(bot_config(fake_bot_api, sample_db, None), store)
    async with polling:
        assert polling.updater is not None
        await polling.updater.start_polling(poll_interval=0.0, timeout=1)
        await polling.start()
        try:
            assert fake_bot_api.calls("deleteWebhook") and fake_bot_api.webhook is None
            fake_bot_api.push_message(USER, USER, "/search 数据库")
            await fake_bot_api.wait_for(USER, 2)
        finally:
            await polling.updater.stop()
            await polling.stop()


def test_a_webhook_telegram_refuses_stops_start_up_with_its_reason(
        fake_bot_api: FakeBotApi, store: Database, sample_db: Path) -> None:
    import asyncio

    from bot.webhook import run_webhook

    fake_bot_api.inject("setWebhook", "400", description="Bad Request: bad webhook: Failed to resolve host")
    port = free_port()
    config = bot_config(fake_bot_api, sample_db, {"url": f"http://127.0.0.1:{port}/hook", "port": port,
                                                  "secret_token": SECRET})
    assert config.telegram.webhook is not None
    loop = asyncio.new_event_loop()  # run_webhook runs its own loop, as under `digestbot run`
    asyncio.set_event_loop(loop)
    try:
        with pytest.raises(DigestError) as caught:
            run_webhook(build_application(config, store), config.telegram.webhook)
    finally:
        loop.close()  # and with it the signal handlers PTB added
        asyncio.set_event_loop(None)
    message = str(caught.value)
    assert message.startswith(f"Telegram refused the webhook http://127.0.0.1:{port}/hook: ")
    assert message.lower().endswith("bad webhook: failed to resolve host")
    assert not _accepts(port)


# ---------------------------------------------------------------------------------------------
# End to end: `digestbot run`, configured by the environment alone


def bot_env(tmp_path: Path, fake: FakeBotApi, **more: str) -> dict[str, str]:
    secrets = tmp_path / "secrets"  # as Docker mounts them: one file per secret, named like the variable
    secrets.mkdir(exist_ok=True)
    (secrets / "digestbot_token").write_text(fake.token + "\n", encoding="utf-8")
    return {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
        "PYTHONUNBUFFERED": "1", "DIGESTBOT_SECRETS_DIR": str(secrets),
        "DIGESTBOT_TELEGRAM__BASE_URL": fake.base_url,
        "DIGESTBOT_TELEGRAM__REQUEST_TIMEOUT": "5",
        "DIGESTBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'digest.db'}",
        **more,
    }


def start_bot(tmp_path: Path, env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / log_name).open("wb")
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def stop_bot(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_for(predicate: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"digestbot run exited with {proc.returncode} before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.mark.slow
def test_digestbot_run_by_webhook_then_polling_then_as_a_second_worker(
        tmp_path: Path, fake_bot_api: FakeBotApi, sample_db: Path) -> None:
    fake_bot_api.add_user(USER, first_name="Reader")
    shutil.copyfile(sample_db, tmp_path / "digest.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    (tmp_path / "webhook_secret").write_text(SECRET, encoding="utf-8")
    webhook_env = bot_env(tmp_path, fake_bot_api, DIGESTBOT_TELEGRAM__WEBHOOK__URL=url,
                          DIGESTBOT_TELEGRAM__WEBHOOK__PORT=str(port),
                          DIGESTBOT_TELEGRAM__WEBHOOK__SECRET_TOKEN_FILE=str(tmp_path / "webhook_secret"))

    proc = start_bot(tmp_path, webhook_env, "webhook.log")
    try:
        wait_for(lambda: fake_bot_api.calls("setWebhook"), "setWebhook", proc, tmp_path / "webhook.log")
        wait_for(lambda: _accepts(port), "webhook server", proc, tmp_path / "webhook.log")
        with httpx.Client(timeout=5) as client:
            refused = client.post(url, json=message_update(1, "/search 数据库"), headers={SECRET_HEADER: "nope"})
            taken = client.post(url, json=message_update(2, "/search 开源"), headers={SECRET_HEADER: SECRET})
        assert (refused.status_code, taken.status_code) == (403, 200)
        [answer] = fake_bot_api.wait_for_blocking(USER, 1, timeout=20)
        assert "开源" in answer.plain_text
    finally:
        assert stop_bot(proc) == 0
    [set_webhook] = fake_bot_api.calls("setWebhook")
    assert (set_webhook.params["url"], set_webhook.params["secret_token"]) == (url, SECRET)
    assert not fake_bot_api.calls("getUpdates") and len(fake_bot_api.replies(USER)) == 1

    # The same bot polling again: deleteWebhook first, else getUpdates would be refused.
    proc = start_bot(tmp_path, bot_env(tmp_path, fake_bot_api), "polling.log")
    try:
        wait_for(lambda: fake_bot_api.calls("getUpdates"), "getUpdates", proc, tmp_path / "polling.log")
        assert fake_bot_api.calls("deleteWebhook") and fake_bot_api.webhook is None
        fake_bot_api.push_message(USER, USER, "/search 数据库")
        fake_bot_api.wait_for_blocking(USER, 2, timeout=20)
    finally:
        assert stop_bot(proc) == 0

    # A second worker (poll_commands: false) with the same webhook config takes no updates at all.
    before = len(fake_bot_api.requests)
    proc = start_bot(tmp_path, {**webhook_env, "DIGESTBOT_TELEGRAM__POLL_COMMANDS": "false"}, "worker.log")
    try:
        wait_for(lambda: any(r.method == "setMyCommands" for r in fake_bot_api.requests[before:]),
                 "start-up", proc, tmp_path / "worker.log")
        time.sleep(0.5)
        assert not _accepts(port)
    finally:
        assert stop_bot(proc) == 0
    methods = {r.method for r in fake_bot_api.requests[before:]}
    assert not methods & {"setWebhook", "deleteWebhook", "getUpdates"}, methods


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_a_port_in_use_is_named(tmp_path: Path, fake_bot_api: FakeBotApi) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "secret").write_text(SECRET, encoding="utf-8")
        env = bot_env(tmp_path, fake_bot_api, DIGESTBOT_TELEGRAM__WEBHOOK__URL=f"http://127.0.0.1:{port}/hook",
                      DIGESTBOT_TELEGRAM__WEBHOOK__PORT=str(port),
                      DIGESTBOT_TELEGRAM__WEBHOOK__SECRET_TOKEN_FILE=str(tmp_path / "secret"))
        done = subprocess.run([sys.executable, "-m", "bot.cli", "run"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"digestbot: error: telegram.webhook: cannot listen on 127.0.0.1:{port}: Address already in use" \
        in done.stderr
    assert "Traceback" not in done.stderr and fake_bot_api.token not in done.stderr
