"""Logs: JSON lines for collectors, a start-up line per channel, and the token in no output at all."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from bot import logs
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import config_data, insert_items, write_config

ROOT = Path(__file__).resolve().parent.parent
# Shaped like a real token (bot id, colon, 35 characters), and one the fake Bot API refuses (a dot).
REAL_SHAPE = "7012345678:AAHk2l1Zq9xVbN3mP8rT5wY7uE4iO6aS0dF"
REFUSED = "4242:refused.secret.part"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGESTBOT_")}
    return {**env, "PYTHONPATH": str(ROOT)}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block ends: nothing listens there


def _digestbot(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(config), *args],
                          capture_output=True, text=True, env=_env(), timeout=timeout)


def _digestbot_for(config: Path, seconds: float, *args: str) -> str:
    """Output of a command that keeps going (run waiting for an unreachable Telegram), stopped after seconds."""
    with subprocess.Popen([sys.executable, "-m", "bot.cli", "--config", str(config), *args], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env()) as process:
        try:
            return process.communicate(timeout=seconds)[0]
        except subprocess.TimeoutExpired:
            process.terminate()
            return process.communicate(timeout=30)[0]


def _config(tmp_path: Path, token: str, base_url: str, **extra: object) -> Path:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    data = config_data(url, base_url=base_url, token=token,
                       channels=[{"name": "main", "chat_id": -1001000000301, "schedule": ["0 9 * * *"]}])
    data["telegram"].update(poll_commands=True, request_timeout=2, **extra)
    return write_config(tmp_path / f"config-{abs(hash((token, base_url)))}.yaml", data)


@pytest.mark.slow
def test_the_token_is_in_no_output_of_a_failing_run_or_publish(tmp_path: Path) -> None:
    """Verbose, text and JSON: a token Telegram rejects, and a Bot API that is not there at all."""
    with FakeBotApi() as fake:
        fake.add_channel(-1001000000301)
        cases = [
            (REFUSED, fake.base_url),  # PTB: "The token `…` was rejected"; httpx logs …/bot<token>/getMe
            (REAL_SHAPE, f"http://127.0.0.1:{_closed_port()}/bot"),  # connection refused
        ]
        seen_masked = False
        for token, base_url in cases:
            config = _config(tmp_path, token, base_url)
            from digests.store import open_database

            db = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
            insert_items(db, 1, start=len(token))
            db.dispose()
            secret = token.split(":", 1)[1]
            for command in (["run"], ["publish", "--once"]):
                for fmt in ("text", "json"):
                    if token == REAL_SHAPE and command == ["run"]:
                        # run waits for an unreachable Telegram (1, 2, 4 ... s): read what it says meanwhile
                        output = _digestbot_for(config, 8, "-v", "--log-format", fmt, *command)
                        assert "cannot reach Telegram" in output, output
                    else:
                        result = _digestbot(config, "-v", "--log-format", fmt, *command)
                        output = result.stdout + result.stderr
                        assert result.returncode != 0, output
                        # the one line that says what is wrong (bot/startup.py), not an internal error
                        last = result.stderr.strip().splitlines()[-1]
                        assert last.startswith("digestbot: error: ") and "internal error" not in output, output
                    assert token not in output and secret not in output, f"{command} {fmt}:\n{output}"
                    seen_masked = seen_masked or logs.MASK in output
    assert seen_masked  # the masking did work on real output, not only on output without a token


def test_a_traceback_and_a_token_shaped_string_are_masked_too() -> None:
    stream = _Lines()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.TokenFilter())
    log = logging.getLogger("digestbot.test-mask")
    log.addHandler(handler)
    log.propagate = False
    logs.add_secret("99:short-secret")
    try:
        try:
            raise RuntimeError(f"request to https://api.telegram.org/bot{REAL_SHAPE}/getMe failed")
        except RuntimeError:
            log.exception("send failed with %s", "99:short-secret")
    finally:
        log.removeHandler(handler)
    [line] = stream.lines
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "digestbot.test-mask"
    assert entry["message"] == "send failed with <token>"
    assert "bot<token>/getMe failed" in entry["exc_info"] and "Traceback" in entry["exc_info"]
    assert REAL_SHAPE not in line and "short-secret" not in line


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._buffer = ""

    def write(self, text: str) -> None:
        self._buffer += text
        *done, self._buffer = self._buffer.split("\n")
        self.lines.extend(line for line in done if line)

    def flush(self) -> None:
        pass


def _read_lines(stream, out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line.rstrip("\n"))


def test_run_logs_one_json_line_per_channel_with_its_next_slot_in_its_timezone(tmp_path: Path) -> None:
    data = config_data(f"sqlite:///{tmp_path / 'digest.db'}", base_url="http://127.0.0.1:9/bot", token="",
                       channels=[
                           {"name": "column", "chat_id": "@hardcore_col", "schedule": ["0 9 * * *", "0 18 * * *"],
                            "timezone": "Asia/Shanghai"},
                           {"name": "ny", "chat_id": -1001000000302, "schedule": ["30 7 * * 1-5"],
                            "timezone": "America/New_York"},
                       ])
    data["log_level"] = "INFO"
    config = write_config(tmp_path / "config.yaml", data)
    before = datetime.now(UTC)
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "--config", str(config), "--log-format", "json",
                                "run", "--dry-run"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env=_env())
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stderr, lines), daemon=True).start()
    seen: list[str] = []
    slots: dict[str, str] = {}
    deadline = time.monotonic() + 30
    try:
        while len(slots) < 2 and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if not line.startswith("{"):
                continue  # the dry-run notice is a plain print, not a log line
            entry = json.loads(line)
            assert set(entry) >= {"time", "level", "logger", "message"}
            if entry["message"].startswith("channel "):
                slots[entry["message"].split()[1]] = entry["message"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    after = datetime.now(UTC)
    assert len(slots) == 2, "\n".join(seen)

    def expected(crons: list[str], zone: str) -> set[str]:
        """The next slot as the line shows it, reckoned at start and at the end (a slot may pass between)."""
        tz = ZoneInfo(zone)
        triggers = [CronTrigger.from_crontab(cron, timezone=tz) for cron in crons]
        return {f"{min(t.get_next_fire_time(None, moment) for t in triggers).astimezone(tz):%Y-%m-%d %H:%M %Z}"
                for moment in (before, after)}

    assert any(slots["column"] == f"channel column (@hardcore_col): next slot {when} (Asia/Shanghai) · schedule "
               "0 9 * * *; 0 18 * * *" for when in expected(["0 9 * * *", "0 18 * * *"], "Asia/Shanghai")), \
        slots["column"]
    assert any(slots["ny"] == f"channel ny (-1001000000302): next slot {when} (America/New_York) · schedule "
               "30 7 * * 1-5" for when in expected(["30 7 * * 1-5"], "America/New_York")), slots["ny"]
