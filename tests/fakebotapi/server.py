"""A fake Telegram Bot API: a real HTTP server on 127.0.0.1 for end-to-end tests.

python-telegram-bot reaches it unmodified through ``base_url``. Messages are validated the way
Telegram does (HTML/Markdown parsed by TDLib, length limits in UTF-16 units), rate limits and
flood waits are enforced, and faults (429, 5xx, 403, dropped connections, slow answers) can be
scripted per method. Everything the bot did is recorded for assertions.

This module is the fake's face for tests: set-up, fault plans, introspection and waits.
The parts: ``transport`` (HTTP), ``dispatch`` (routing a call), ``methods``/``messages``
(one handler per method), ``records`` (what is kept), ``throttling``, ``faults``,
``entities``, ``wire`` (request decoding), ``updates`` (what users do), ``control``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.fakebotapi import updates
from tests.fakebotapi.control import ControlApi, state_json, write_state
from tests.fakebotapi.dispatch import Dispatcher
from tests.fakebotapi.faults import Fault, FaultPlan, check_kind
from tests.fakebotapi.methods import canonical_name
from tests.fakebotapi.records import (
    CallbackAnswer,
    Chat,
    Edit,
    InlineAnswer,
    Records,
    RequestRecord,
    SentMessage,
    scope_key,
)
from tests.fakebotapi.throttling import FloodControl, RateLimits, Throttle
from tests.fakebotapi.transport import HttpServer

DEFAULT_TOKEN = "123:ABC"
DEFAULT_BOT_USERNAME = "hardcore_digest_bot"


class FakeBotApi:
    """A fake Bot API server; start it, point PTB at :attr:`base_url`, assert on the records.

    All public methods are thread-safe; the server answers from its own threads.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_username: str = DEFAULT_BOT_USERNAME,
        limits: RateLimits | None = None,
        seed: int = 0,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.state_file = Path(state_file) if state_file else None
        self._records = Records(DEFAULT_TOKEN, bot_username, limits or RateLimits())
        self._lock = self._records.lock
        self._changed = self._records.changed
        self._stopping = self._records.stopping
        self._flood = FloodControl()
        self._faults = FaultPlan(seed)
        self._dispatcher = Dispatcher(self._records, self._flood, self._faults, self._mark_dirty)
        self._control = ControlApi(self, self._lock)
        self._server: HttpServer | None = None
        self._state_writer: threading.Thread | None = None
        self._state_dirty = threading.Event()

    # The bot's identity and the rate limits live in the records, read on every call.

    @property
    def token(self) -> str:
        return self._records.token

    @token.setter
    def token(self, value: str) -> None:
        self._records.token = value

    @property
    def bot_username(self) -> str:
        return self._records.bot_username

    @bot_username.setter
    def bot_username(self, value: str) -> None:
        self._records.bot_username = value

    @property
    def limits(self) -> RateLimits:
        return self._records.rate.limits

    @limits.setter
    def limits(self, value: RateLimits) -> None:
        self._records.rate.limits = value

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeBotApi:
        """Bind and serve from a background thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = HttpServer(
            (self.host, self._requested_port), self._dispatcher.answer, self._control.answer
        )
        self._server.start()
        if self.state_file is not None:
            self._state_writer = threading.Thread(
                target=self._write_state_loop, name="fakebotapi-state", daemon=True
            )
            self._state_writer.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake long polls and slow answers, close open connections."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        server.stop()
        if self._state_writer:
            self._state_writer.join(timeout=5)
        if self.state_file is not None:
            self.dump_state()
        self._server = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeBotApi is not started")
        return self._server.port

    @property
    def url(self) -> str:
        """Root of the server, e.g. for the control API: ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give PTB as ``base_url``; PTB appends the token and ``/method``."""
        return f"{self.url}/bot"

    # --- world set-up ----------------------------------------------------------------------------

    def add_channel(self, chat_id: int, username: str | None = None, title: str | None = None) -> Chat:
        """A channel the bot can post to, by id or by ``@username``."""
        return self._records.add_chat(
            Chat(chat_id, "channel", title=title or f"Channel {chat_id}", username=username)
        )

    def add_group(
        self, chat_id: int, title: str | None = None, username: str | None = None, *, supergroup: bool = True
    ) -> Chat:
        """A group (or supergroup) the bot is a member of."""
        kind = "supergroup" if supergroup else "group"
        return self._records.add_chat(
            Chat(chat_id, kind, title=title or f"Group {chat_id}", username=username)
        )

    def add_user(
        self, user_id: int, first_name: str | None = None, username: str | None = None,
        language_code: str | None = None,
    ) -> Chat:
        """A user who has started the bot: the private chat shares the user's id."""
        return self._records.add_user(user_id, first_name, username, language_code)

    def kick(self, chat: int | str) -> None:
        """From now on the bot gets 403 Forbidden for this chat."""
        with self._lock:
            self._records.chat_or_raise(chat).kicked = True

    def unkick(self, chat: int | str) -> None:
        with self._lock:
            self._records.chat_or_raise(chat).kicked = False

    def migrate(self, chat: int | str, to_chat_id: int) -> Chat:
        """Upgrade a group to a supergroup: sends to the old id get ChatMigrated."""
        with self._lock:
            old = self._records.chat_or_raise(chat)
            old.migrated_to = to_chat_id
            return self._records.add_chat(Chat(to_chat_id, "supergroup", title=old.title))

    def age_message(self, chat: int | str, message_id: int, seconds: float) -> SentMessage:
        """Make a message the bot sent ``seconds`` older (e.g. past the 48 hours deletion allows)."""
        with self._lock:
            message = self._records.messages[(self._records.chat_or_raise(chat).id, message_id)]
            message.received_at -= seconds
            message.date -= int(seconds)
            return message

    def remove_message(self, chat: int | str, message_id: int) -> None:
        """A chat admin deletes a message the bot sent: edits of it find no message from now on."""
        with self._lock:
            self._records.messages[(self._records.chat_or_raise(chat).id, message_id)].deleted = True

    def inject(
        self,
        method: str | Iterable[str] | None = None,
        fault: str = "429",
        *,
        times: int | None = 1,
        retry_after: int = 1,
        delay: float = 1.0,
        status: int = 502,
        chat_id: int | str | None = None,
        probability: float = 1.0,
        description: str | None = None,
    ) -> Fault:
        """Script a failure for the next ``times`` matching calls (None: until cleared).

        Args:
            method: Bot API method name(s) to hit; None hits every method, getUpdates included.
            fault: "429" (with ``retry_after``), "5xx" (``status``, default 502 Bad Gateway),
                "403", "400" (``description``), "drop_before" (close the connection, record
                nothing), "drop_after_accept" (record the message, then close without an
                answer), "delay" (record the message, answer after ``delay`` seconds).
            chat_id: only calls for this chat (id or @username).
            probability: chance that a matching call is hit, drawn from the seeded RNG.
        """
        check_kind(fault)
        if isinstance(method, str):
            methods: frozenset[str] | None = frozenset({canonical_name(method)})
        elif method is None:
            methods = None
        else:
            methods = frozenset(canonical_name(m) for m in method)
        rule = Fault(
            kind=fault,
            methods=methods,
            times=times,
            retry_after=retry_after,
            delay=delay,
            status=status,
            probability=probability,
            description=description,
        )
        with self._lock:
            rule.chat_id = self._records.chat_key(chat_id) if chat_id is not None else None
            self._faults.rules.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.rules.clear()

    # --- updates ---------------------------------------------------------------------------------

    def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update of ``kind`` ("message", "callback_query", ...) for getUpdates."""
        return self._records.push_update(kind, payload)

    def push_message(
        self, chat_id: int | str, from_user_id: int, text: str, *, reply_to_message_id: int | None = None
    ) -> dict[str, Any]:
        """Queue a user's text message; a leading ``/command`` gets its bot_command entity."""
        return updates.push_message(self._records, chat_id, from_user_id, text, reply_to_message_id)

    def push_callback_query(
        self, from_user_id: int, data: str, message: SentMessage | None = None
    ) -> dict[str, Any]:
        """Queue a press on an inline button of ``message`` (one the bot sent)."""
        return updates.push_callback_query(self._records, from_user_id, data, message)

    def push_inline_query(self, from_user_id: int, query: str, offset: str = "") -> dict[str, Any]:
        """Queue an inline query ``@bot query`` typed by a user."""
        return updates.push_inline_query(self._records, from_user_id, query, offset)

    # --- introspection ---------------------------------------------------------------------------

    @property
    def sent(self) -> list[SentMessage]:
        """Every message the fake accepted, in arrival order (deleted ones included)."""
        with self._lock:
            return list(self._records.sent)

    def replies(self, chat: int | str) -> list[SentMessage]:
        """Messages accepted for one chat (id or @username), in order."""
        with self._lock:
            key = self._records.chat_key(chat)
            return [m for m in self._records.sent if m.chat_id == key]

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records.requests)

    def calls(self, method: str) -> list[RequestRecord]:
        """Requests for one method, e.g. ``calls("sendMessage")``."""
        return [r for r in self.requests if r.method == method]

    @property
    def edits(self) -> list[Edit]:
        with self._lock:
            return list(self._records.edits)

    @property
    def deleted(self) -> list[tuple[int, int]]:
        """(chat_id, message_id) of every deleted message."""
        with self._lock:
            return list(self._records.deleted)

    @property
    def throttled(self) -> list[Throttle]:
        with self._lock:
            return list(self._flood.throttled)

    @property
    def count_429(self) -> int:
        with self._lock:
            return len(self._flood.throttled)

    @property
    def early_retries(self) -> int:
        """Resends of a 429-ed request (same method, chat and content) before its retry_after passed.

        Sends of other content during a chat's flood wait also get 429 (reason "flood_wait" in
        :attr:`throttled`) but are not counted here: concurrent sends already in flight when the
        first 429 went out would otherwise count, though the client never ignored an answer.
        """
        with self._lock:
            return self._flood.early_retries

    @property
    def answered_callbacks(self) -> list[CallbackAnswer]:
        with self._lock:
            return list(self._records.answered_callbacks)

    @property
    def inline_answers(self) -> list[InlineAnswer]:
        with self._lock:
            return list(self._records.inline_answers)

    @property
    def webhook(self) -> dict[str, Any] | None:
        """What the last setWebhook set (url, secret_token, ...), or None after deleteWebhook."""
        with self._lock:
            return dict(self._records.webhook) if self._records.webhook else None

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._lock:
            return list(self._records.updates)

    def my_commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]]:
        """Commands set with setMyCommands for a scope (default scope when None)."""
        with self._lock:
            return list(self._records.commands.get((scope_key(scope), language_code), []))

    # --- waiting ---------------------------------------------------------------------------------

    async def wait_for(self, chat: int | str, count: int, timeout: float = 5.0) -> list[SentMessage]:
        """Wait until ``count`` messages were accepted for ``chat``; returns them all.

        Raises:
            TimeoutError: naming what did arrive.
        """
        await self.wait_until(
            lambda: len(self.replies(chat)) >= count, timeout, lambda: self._shortfall(chat, count)
        )
        return self.replies(chat)

    def wait_for_blocking(self, chat: int | str, count: int, timeout: float = 5.0) -> list[SentMessage]:
        """:meth:`wait_for` for code without an event loop (it would block one)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.replies(chat)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._shortfall(chat, count))
                self._changed.wait(remaining)
            return self.replies(chat)

    async def wait_for_request(
        self, method: str, count: int = 1, timeout: float = 5.0
    ) -> list[RequestRecord]:
        """Wait until ``method`` was called ``count`` times, e.g. the bot's first getUpdates."""
        await self.wait_until(
            lambda: len(self.calls(method)) >= count,
            timeout,
            lambda: f"expected {count} {method} call(s), got {len(self.calls(method))}",
        )
        return self.calls(method)

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 5.0, describe: Callable[[], str] | None = None
    ) -> None:
        """Poll ``predicate`` without blocking the event loop the bot under test may share."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(describe() if describe else f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    def _shortfall(self, chat: int | str, count: int) -> str:
        got = self.replies(chat)
        texts = [m.plain_text[:60] for m in got]
        return f"expected {count} message(s) in chat {chat!r}, got {len(got)}: {texts}"

    # --- state for another process ---------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Recorded state as JSON-able data (what the standalone server dumps)."""
        return state_json(self._records, self._flood)

    def dump_state(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Write :meth:`state` as JSON, atomically, to ``path`` or :attr:`state_file`."""
        target = Path(path) if path else self.state_file
        state = self.state()
        if target is not None:
            write_state(target, state)
        return state

    def _mark_dirty(self) -> None:
        if self.state_file is not None:
            self._state_dirty.set()

    def _write_state_loop(self) -> None:
        # Write-behind, coalescing bursts: cheap under load, at most ~50 ms stale.
        while not self._stopping.is_set():
            if self._state_dirty.wait(0.2):
                self._state_dirty.clear()
                self.dump_state()
                self._stopping.wait(0.05)
