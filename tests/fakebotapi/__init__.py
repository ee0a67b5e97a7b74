"""A fake Telegram Bot API for end-to-end tests, in-process or as a long-lived subprocess.

In-process::

    async def test_publish(fake_bot_api):
        fake_bot_api.add_channel(-1001, username="main")
        app = (
            ApplicationBuilder()
            .token(fake_bot_api.token)
            .base_url(fake_bot_api.base_url)
            .request(ptb_request())
            .get_updates_request(ptb_request())
            .build()
        )
        ...
        await fake_bot_api.wait_for("@main", 3)

Out of process (a bot subprocess killed and restarted against one fake)::

    with FakeBotApiProcess(tmp_path / "state.json") as fake:
        fake.control("channel", chat_id=-1001, username="main")
        ...  # start the bot with fake.base_url
        assert fake.state()["early_retries"] == 0
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from telegram.request import HTTPXRequest

from tests.fakebotapi.entities import CAPTION_LIMIT, TEXT_LIMIT, parse_formatted_text, utf16_len
from tests.fakebotapi.errors import ApiError
from tests.fakebotapi.faults import Fault
from tests.fakebotapi.records import CallbackAnswer, Chat, Edit, InlineAnswer, RequestRecord, SentMessage
from tests.fakebotapi.server import DEFAULT_BOT_USERNAME, DEFAULT_TOKEN, FakeBotApi
from tests.fakebotapi.throttling import RateLimits, Throttle

__all__ = [
    "CAPTION_LIMIT",
    "DEFAULT_BOT_USERNAME",
    "DEFAULT_TOKEN",
    "TEXT_LIMIT",
    "ApiError",
    "CallbackAnswer",
    "Chat",
    "Edit",
    "FakeBotApi",
    "FakeBotApiProcess",
    "Fault",
    "InlineAnswer",
    "RateLimits",
    "RequestRecord",
    "SentMessage",
    "Throttle",
    "fake_bot_api",
    "parse_formatted_text",
    "ptb_request",
    "utf16_len",
]

_REPO_ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on (http://\S+)")


def ptb_request(**kwargs: Any) -> HTTPXRequest:
    """PTB's HTTPXRequest for the fake: plain HTTP, so it skips loading CA certificates.

    A default HTTPXRequest spends ~0.2 s reading the CA bundle; a Bot needs two of them.
    """
    return HTTPXRequest(httpx_kwargs={"verify": False}, **kwargs)


@pytest.fixture
def fake_bot_api() -> Iterator[FakeBotApi]:
    """A started fake Bot API with no chats; token ``fake.token``, URL ``fake.base_url``."""
    with FakeBotApi() as fake:
        yield fake


class FakeBotApiProcess:
    """``python -m tests.fakebotapi`` in a subprocess, driven through its control API."""

    def __init__(
        self, state_file: str | os.PathLike[str], *, port: int = 0, extra_args: list[str] | None = None
    ):
        self.state_file = Path(state_file)
        self._args = [
            sys.executable,
            "-m",
            "tests.fakebotapi",
            "--port",
            str(port),
            "--state-file",
            str(self.state_file),
            *(extra_args or []),
        ]
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self.token = DEFAULT_TOKEN

    def start(self) -> FakeBotApiProcess:
        self._process = subprocess.Popen(
            self._args, cwd=_REPO_ROOT, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"fake Bot API did not start: {line!r}")
        self.url = match.group(1)
        return self

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    def control(self, name: str, **args: Any) -> Any:
        """POST /control/<name> with ``args`` as JSON; returns the result."""
        request = Request(
            f"{self.url}/control/{name}",
            data=json.dumps(args).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urlopen(request, timeout=10) as response:
                return json.load(response)["result"]
        except HTTPError as err:
            raise RuntimeError(f"control/{name} failed: {err.read().decode(errors='replace')}") from err

    def state(self) -> dict[str, Any]:
        """The fake's recorded state, live (GET /control/state)."""
        with urlopen(f"{self.url}/control/state", timeout=10) as response:
            return json.load(response)["result"]

    def stop(self) -> None:
        """Terminate gracefully: the fake writes its state file one last time."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()
        self._process = None

    def __enter__(self) -> FakeBotApiProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
