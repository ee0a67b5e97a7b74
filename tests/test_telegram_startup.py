"""Telegram unreachable, a wrong base_url, a rejected token: one line saying so, and `run` waits for Telegram."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.cli import main as digestbot
from bot.startup import backoff
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import ADMIN, config_data, write_config

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = -1001000000001
USER = 4242


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_file(tmp_path: Path, base_url: str, token: str, **sections: dict) -> Path:
    channels = [{"name": "main", "chat_id": CHANNEL, "schedule": ["0 9 * * *"]}]
    data = config_data(f"sqlite:///{tmp_path / 'digest.db'}", base_url=base_url, token=token, channels=channels,
                       **sections)
    return write_config(tmp_path / "config.yaml", data)


def run_cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    code = digestbot(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out + err


@pytest.fixture
def fake(fake_bot_api: FakeBotApi) -> FakeBotApi:
    fake_bot_api.add_channel(CHANNEL, title="main")
    fake_bot_api.add_user(ADMIN)
    return fake_bot_api


def assert_one_clear_line(output: str, message: str, token: str) -> None:
    assert f"digestbot: error: {message}" in output
    assert "Traceback" not in output and "internal error" not in output
    assert token.split(":")[1] not in output  # the token's secret half is never shown


def test_publish_once_with_telegram_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    config = config_file(tmp_path, f"http://127.0.0.1:{port}/bot", "123:SECRETxyz")
    code, output = run_cli(capsys, config, "publish", "--once")
    assert code == 1
    assert_one_clear_line(output, f"cannot reach Telegram at 127.0.0.1:{port}: connection refused", "123:SECRETxyz")


def test_publish_once_with_a_wrong_base_url(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            fake: FakeBotApi) -> None:
    config = config_file(tmp_path, f"{fake.url}/telegram/bot", fake.token)  # the fake answers 404 there
    code, output = run_cli(capsys, config, "publish", "--once")
    assert code == 2
    assert_one_clear_line(output, f"127.0.0.1:{fake.port} answered 404: is telegram.base_url right?", fake.token)


def test_publish_once_with_a_rejected_token(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            fake: FakeBotApi) -> None:
    config = config_file(tmp_path, fake.base_url, "123:SECRETxyz")  # another bot's token: 401
    code, output = run_cli(capsys, config, "publish", "--once")
    assert code == 2
    assert_one_clear_line(output, "Telegram rejected the token (telegram.token)", "123:SECRETxyz")
    assert fake.sent == []


@pytest.mark.parametrize("problem", ["token", "base_url"])
def test_run_stops_at_once_when_only_the_config_can_help(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         fake: FakeBotApi, problem: str) -> None:
    token = "123:SECRETxyz" if problem == "token" else fake.token
    base_url = fake.base_url if problem == "token" else f"{fake.url}/nope/bot"
    started = time.monotonic()
    code, output = run_cli(capsys, config_file(tmp_path, base_url, token), "run")
    assert code == 2 and time.monotonic() - started < 5  # no retries: they cannot help
    message = ("Telegram rejected the token (telegram.token)" if problem == "token"
               else f"127.0.0.1:{fake.port} answered 404: is telegram.base_url right?")
    assert_one_clear_line(output, message, token)


def test_backoff_doubles_up_to_a_minute() -> None:
    assert [backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


@pytest.mark.slow
def test_run_waits_for_telegram_and_then_answers(tmp_path: Path) -> None:
    """`run` started before Telegram is reachable: it retries (1 s, then 2 s), then starts and answers."""
    port = closed_port()
    fake = FakeBotApi(port=port)  # started once the bot has failed twice
    fake.add_user(USER)
    config = config_file(tmp_path, f"http://127.0.0.1:{port}/bot", fake.token, telegram={"poll_commands": True})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
    bot = subprocess.Popen([sys.executable, "-c", code, "--config", str(config), "run"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in bot.stderr or ()], daemon=True)
    reader.start()
    err: list[str] = []
    try:
        while "attempt 2 failed" not in "".join(err):
            err.append(lines.get(timeout=60))
        fake.start()
        fake.push_message(USER, USER, "/start")
        [welcome] = fake.wait_for_blocking(USER, 1, timeout=30)
        assert "/search" in welcome.plain_text
    finally:
        bot.send_signal(signal.SIGINT)
        try:
            bot.wait(timeout=30)
        finally:
            bot.kill()
            fake.stop()
        reader.join(timeout=10)
    while not lines.empty():
        err.append(lines.get())
    output = "".join(err)
    assert bot.returncode == 0, output
    refused = f"cannot reach Telegram at 127.0.0.1:{port}: connection refused"
    assert f"{refused}; trying again in 1 s (attempt 1 failed)" in output
    assert f"{refused}; trying again in 2 s (attempt 2 failed)" in output
    assert "attempt 3 failed" not in output and "Traceback" not in output
    assert fake.token.split(":")[1] not in output
