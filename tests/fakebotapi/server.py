"""A fake Telegram Bot API: a real HTTP server on 127.0.0.1 for end-to-end tests.

python-telegram-bot reaches it unmodified through ``base_url``. Messages are validated the way
Telegram does (HTML/Markdown parsed by TDLib, length limits in UTF-16 units), rate limits and
flood waits are enforced, and faults (429, 5xx, 403, dropped connections, slow answers) can be
scripted per method. Everything the bot did is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from tests.fakebotapi.entities import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    detect_entities,
    parse_within_limit,
    utf16_len,
)
from tests.fakebotapi.errors import ApiError, bad_request
from tests.fakebotapi.transport import DROP, Drop, HttpServer, Reply
from tests.fakebotapi.wire import Call, UploadedFile, decode_params, loggable

DEFAULT_TOKEN = "123:ABC"
DEFAULT_BOT_USERNAME = "hardcore_digest_bot"

FAULT_KINDS = frozenset({"429", "5xx", "403", "400", "drop_before", "drop_after_accept", "delay"})
# Faults that happen before the method runs (nothing recorded) and after it (message recorded).
_PRE_FAULTS = frozenset({"429", "5xx", "403", "400", "drop_before"})
_POST_FAULTS = frozenset({"drop_after_accept", "delay"})

# Methods that put something into a chat: they obey flood waits and count as early retries.
_CHAT_WRITE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "deleteMessage",
    }
)

_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)/?$")
_TOKEN = re.compile(r"^(?P<bot_id>\d+):[A-Za-z0-9_-]+$")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")

# --- records ---------------------------------------------------------------------------------------


@dataclass
class Chat:
    """A chat the fake knows: a channel, a (super)group or a private chat with a user."""

    id: int
    type: str  # "channel" | "supergroup" | "group" | "private"
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    kicked: bool = False
    migrated_to: int | None = None
    last_message_id: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data

    def forbidden_reason(self) -> str:
        if self.type == "private":
            return "Forbidden: bot was blocked by the user"
        return f"Forbidden: bot was kicked from the {self.type} chat"


@dataclass
class SentMessage:
    """A message the fake accepted from the bot; edits update it in place."""

    chat_id: int
    message_id: int
    method: str
    text: str | None
    caption: str | None
    plain_text: str
    entities: list[dict[str, Any]]
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    disable_notification: bool
    link_preview_options: dict[str, Any] | None
    disable_web_page_preview: bool | None
    photo: dict[str, Any] | None
    date: int
    received_at: float  # wall-clock arrival of the request
    # None when the bot got its answer; "drop_after_accept" or "delay" when it did not (in time).
    fault: str | None = None
    edit_date: int | None = None
    deleted: bool = False
    sender: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("sender")
        return data


@dataclass
class Edit:
    """One accepted edit (text, caption or reply markup) of a message."""

    method: str
    chat_id: int | None
    message_id: int | None
    inline_message_id: str | None
    text: str | None
    caption: str | None
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    received_at: float


@dataclass
class RequestRecord:
    """One Bot API call as it arrived; ``status`` is None while pending or when dropped."""

    method: str
    received_at: float
    params: dict[str, Any]
    status: int | None = None
    fault: str | None = None


@dataclass
class Throttle:
    """One 429 answer: why it was sent and how long the client was told to wait."""

    method: str
    chat_id: int | str | None
    retry_after: int
    reason: str  # "rate_limit" | "injected" | "flood_wait" (a write to a chat inside its wait)
    at: float


@dataclass
class Fault:
    """A scripted failure; see :meth:`FakeBotApi.inject`."""

    kind: str
    methods: frozenset[str] | None = None
    chat_id: int | str | None = None
    times: int | None = 1
    retry_after: int = 1
    delay: float = 1.0
    status: int = 502
    probability: float = 1.0
    description: str | None = None
    hits: int = 0

    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclass
class RateLimits:
    """Sliding-window limits on sent messages; None disables one.

    Telegram's private-chat guidance (about one message a second) is not enforced by default:
    Telegram tolerates short bursts there, and PTB's AIORateLimiter does not throttle them either.
    """

    global_limit: int | None = 30
    global_window: float = 1.0
    group_limit: int | None = 20  # groups, supergroups and channels
    group_window: float = 60.0
    private_limit: int | None = None
    private_window: float = 1.0


@dataclass
class CallbackAnswer:
    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None
    received_at: float


@dataclass
class InlineAnswer:
    inline_query_id: str
    results: list[dict[str, Any]]
    cache_time: int | None
    is_personal: bool
    next_offset: str | None
    button: dict[str, Any] | None
    received_at: float


# --- request decoding --------------------------------------------------------------------------


def _fingerprint(method: str, params: dict[str, Any]) -> str:
    """What makes two write requests "the same message" for early-retry detection."""
    photo = params.get("photo")
    if isinstance(photo, UploadedFile):
        photo = hashlib.sha1(photo.data).hexdigest()
    body = [method, params.get("text"), params.get("caption"), photo, params.get("message_id")]
    return json.dumps(body, default=str, ensure_ascii=False)


# --- rate limiting -------------------------------------------------------------------------------


class _Window:
    """Timestamps of accepted sends inside one sliding window."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def wait_needed(self, now: float, limit: int | None, window: float) -> float:
        while self.times and self.times[0] <= now - window:
            self.times.popleft()
        if limit is None or len(self.times) < limit:
            return 0.0
        return self.times[-limit] + window - now

    def add(self, now: float) -> None:
        self.times.append(now)


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


# --- the fake ------------------------------------------------------------------------------------


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
        self.bot_username = bot_username
        self.token = DEFAULT_TOKEN
        self.limits = limits or RateLimits()
        self.state_file = Path(state_file) if state_file else None

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._rng = random.Random(seed)
        self._server: HttpServer | None = None
        self._state_writer: threading.Thread | None = None
        self._state_dirty = threading.Event()

        self._chats: dict[int, Chat] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._messages: dict[tuple[int, int], SentMessage] = {}
        self._user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._sent: list[SentMessage] = []
        self._edits: list[Edit] = []
        self._deleted: list[tuple[int, int]] = []
        self._requests: list[RequestRecord] = []
        self._throttled: list[Throttle] = []
        self._early_retries = 0
        self._not_before: dict[int | str, float] = {}  # per chat: end of its flood wait
        self._told: dict[tuple[int | str, str], float] = {}  # per (chat, content): retry deadline announced
        self._faults: list[Fault] = []
        self._global_window = _Window()
        self._chat_windows: dict[int, _Window] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._poll_generation = 0
        self._allowed_updates: list[str] | None = None
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._callback_ids: set[str] = set()
        self._inline_ids: set[str] = set()
        self._query_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._answered_callbacks: list[CallbackAnswer] = []
        self._inline_answers: list[InlineAnswer] = []

        self._handlers: dict[str, Callable[[Call], Any]] = {
            name: getattr(self, f"_api_{name}")
            for name in (
                "getMe",
                "logOut",
                "close",
                "deleteWebhook",
                "getWebhookInfo",
                "getUpdates",
                "sendMessage",
                "sendPhoto",
                "sendChatAction",
                "editMessageText",
                "editMessageCaption",
                "editMessageReplyMarkup",
                "deleteMessage",
                "getChat",
                "answerCallbackQuery",
                "answerInlineQuery",
                "setMyCommands",
                "deleteMyCommands",
                "getMyCommands",
            )
        }
        self._method_names = {name.lower(): name for name in self._handlers}

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeBotApi:
        """Bind and serve from a background thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = HttpServer((self.host, self._requested_port), self._handle_api, self._handle_control)
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
        return self._add_chat(
            Chat(chat_id, "channel", title=title or f"Channel {chat_id}", username=username)
        )

    def add_group(
        self, chat_id: int, title: str | None = None, username: str | None = None, *, supergroup: bool = True
    ) -> Chat:
        """A group (or supergroup) the bot is a member of."""
        kind = "supergroup" if supergroup else "group"
        return self._add_chat(Chat(chat_id, kind, title=title or f"Group {chat_id}", username=username))

    def add_user(self, user_id: int, first_name: str | None = None, username: str | None = None) -> Chat:
        """A user who has started the bot: the private chat shares the user's id."""
        with self._lock:
            self._users[user_id] = {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name or f"User {user_id}",
                **({"username": username} if username else {}),
            }
            existing = self._chats.get(user_id)
            if existing is not None:
                return existing
            return self._add_chat(
                Chat(user_id, "private", first_name=self._users[user_id]["first_name"], username=username)
            )

    def kick(self, chat: int | str) -> None:
        """From now on the bot gets 403 Forbidden for this chat."""
        with self._lock:
            self._chat_or_raise(chat).kicked = True

    def unkick(self, chat: int | str) -> None:
        with self._lock:
            self._chat_or_raise(chat).kicked = False

    def migrate(self, chat: int | str, to_chat_id: int) -> Chat:
        """Upgrade a group to a supergroup: sends to the old id get ChatMigrated."""
        with self._lock:
            old = self._chat_or_raise(chat)
            old.migrated_to = to_chat_id
            return self._add_chat(Chat(to_chat_id, "supergroup", title=old.title))

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
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULT_KINDS)}")
        if isinstance(method, str):
            methods: frozenset[str] | None = frozenset({self._method_names.get(method.lower(), method)})
        elif method is None:
            methods = None
        else:
            methods = frozenset(self._method_names.get(m.lower(), m) for m in method)
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
            rule.chat_id = self._chat_key(chat_id) if chat_id is not None else None
            self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # --- updates ---------------------------------------------------------------------------------

    def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update of ``kind`` ("message", "callback_query", ...) for getUpdates."""
        with self._changed:
            update = {"update_id": next(self._update_ids), kind: payload}
            self._updates.append(update)
            self._changed.notify_all()
            return update

    def push_message(
        self, chat_id: int | str, from_user_id: int, text: str, *, reply_to_message_id: int | None = None
    ) -> dict[str, Any]:
        """Queue a user's text message; a leading ``/command`` gets its bot_command entity."""
        with self._lock:
            if from_user_id not in self._users:
                self.add_user(from_user_id)
            chat = self._chat(chat_id)
            if chat is None:
                raise ValueError(
                    f"unknown chat {chat_id!r}: add it with add_channel/add_group/add_user first"
                )
            chat.last_message_id += 1
            message: dict[str, Any] = {
                "message_id": chat.last_message_id,
                "date": int(time.time()),
                "chat": chat.to_json(),
                "text": text,
            }
            if chat.type == "channel":
                message["sender_chat"] = chat.to_json()
            else:
                message["from"] = self._users[from_user_id]
            # CommandHandler needs this entity; spelled out rather than left to TDLib's detection.
            command = re.match(r"/\S+", text)
            explicit = (
                [{"type": "bot_command", "offset": 0, "length": utf16_len(command.group())}]
                if command
                else []
            )
            entities = detect_entities(text, explicit)
            if entities:
                message["entities"] = entities
            if reply_to_message_id is not None:
                replied = self._messages.get((chat.id, reply_to_message_id))
                if replied is not None:
                    message["reply_to_message"] = self._message_json(replied)
            self._user_messages[(chat.id, chat.last_message_id)] = message
            return self.push_update("channel_post" if chat.type == "channel" else "message", message)

    def push_callback_query(
        self, from_user_id: int, data: str, message: SentMessage | None = None
    ) -> dict[str, Any]:
        """Queue a press on an inline button of ``message`` (one the bot sent)."""
        with self._lock:
            if from_user_id not in self._users:
                self.add_user(from_user_id)
            query_id = str(next(self._query_ids))
            self._callback_ids.add(query_id)
            payload: dict[str, Any] = {
                "id": query_id,
                "from": self._users[from_user_id],
                "chat_instance": str(message.chat_id if message else from_user_id),
                "data": data,
            }
            if message is not None:
                payload["message"] = self._message_json(message)
            return self.push_update("callback_query", payload)

    def push_inline_query(self, from_user_id: int, query: str, offset: str = "") -> dict[str, Any]:
        """Queue an inline query ``@bot query`` typed by a user."""
        with self._lock:
            if from_user_id not in self._users:
                self.add_user(from_user_id)
            query_id = str(next(self._query_ids))
            self._inline_ids.add(query_id)
            payload = {"id": query_id, "from": self._users[from_user_id], "query": query, "offset": offset}
            return self.push_update("inline_query", payload)

    # --- introspection ---------------------------------------------------------------------------

    @property
    def sent(self) -> list[SentMessage]:
        """Every message the fake accepted, in arrival order (deleted ones included)."""
        with self._lock:
            return list(self._sent)

    def replies(self, chat: int | str) -> list[SentMessage]:
        """Messages accepted for one chat (id or @username), in order."""
        with self._lock:
            key = self._chat_key(chat)
            return [m for m in self._sent if m.chat_id == key]

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def calls(self, method: str) -> list[RequestRecord]:
        """Requests for one method, e.g. ``calls("sendMessage")``."""
        return [r for r in self.requests if r.method == method]

    @property
    def edits(self) -> list[Edit]:
        with self._lock:
            return list(self._edits)

    @property
    def deleted(self) -> list[tuple[int, int]]:
        """(chat_id, message_id) of every deleted message."""
        with self._lock:
            return list(self._deleted)

    @property
    def throttled(self) -> list[Throttle]:
        with self._lock:
            return list(self._throttled)

    @property
    def count_429(self) -> int:
        with self._lock:
            return len(self._throttled)

    @property
    def early_retries(self) -> int:
        """Resends of a 429-ed request (same method, chat and content) before its retry_after passed.

        Sends of other content during a chat's flood wait also get 429 (reason "flood_wait" in
        :attr:`throttled`) but are not counted here: concurrent sends already in flight when the
        first 429 went out would otherwise count, though the client never ignored an answer.
        """
        with self._lock:
            return self._early_retries

    @property
    def answered_callbacks(self) -> list[CallbackAnswer]:
        with self._lock:
            return list(self._answered_callbacks)

    @property
    def inline_answers(self) -> list[InlineAnswer]:
        with self._lock:
            return list(self._inline_answers)

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._lock:
            return list(self._updates)

    def my_commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]]:
        """Commands set with setMyCommands for a scope (default scope when None)."""
        with self._lock:
            return list(self._commands.get((self._scope_key(scope), language_code), []))

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

    def state(self) -> dict[str, Any]:
        """Recorded state as JSON-able data (what the standalone server dumps)."""
        with self._lock:
            chats: dict[str, Any] = {}
            for chat in self._chats.values():
                chats[str(chat.id)] = {
                    **chat.to_json(),
                    "kicked": chat.kicked,
                    "messages": [
                        {k: v for k, v in m.to_json().items() if k in _STATE_MESSAGE_KEYS}
                        for m in self._sent
                        if m.chat_id == chat.id
                    ],
                }
            return {
                "sent": [m.to_json() for m in self._sent],
                "chats": chats,
                "count_429": len(self._throttled),
                "early_retries": self._early_retries,
                "edits": [asdict(e) for e in self._edits],
                "deleted": [list(d) for d in self._deleted],
                "request_count": len(self._requests),
                "pending_updates": len(self._updates),
            }

    def dump_state(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Write :meth:`state` as JSON, atomically, to ``path`` or :attr:`state_file`."""
        target = Path(path) if path else self.state_file
        state = self.state()
        if target is not None:
            tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, target)
        return state

    def _write_state_loop(self) -> None:
        # Write-behind, coalescing bursts: cheap under load, at most ~50 ms stale.
        while not self._stopping.is_set():
            if self._state_dirty.wait(0.2):
                self._state_dirty.clear()
                self.dump_state()
                self._stopping.wait(0.05)

    # --- chats -----------------------------------------------------------------------------------

    def _add_chat(self, chat: Chat) -> Chat:
        with self._lock:
            if chat.username:
                chat.username = chat.username.lstrip("@")
            self._chats[chat.id] = chat
            return chat

    def _chat(self, ref: int | str | None) -> Chat | None:
        if ref is None:
            return None
        if isinstance(ref, int):
            return self._chats.get(ref)
        if re.fullmatch(r"-?\d+", ref):
            return self._chats.get(int(ref))
        name = ref.lstrip("@").lower()
        return next((c for c in self._chats.values() if c.username and c.username.lower() == name), None)

    def _chat_or_raise(self, ref: int | str) -> Chat:
        chat = self._chat(ref)
        if chat is None:
            raise KeyError(f"unknown chat {ref!r}")
        return chat

    def _chat_key(self, ref: int | str) -> int | str:
        chat = self._chat(ref)
        return chat.id if chat else ref

    def _target_chat(self, params: dict[str, Any]) -> Chat:
        ref = params.get("chat_id")
        if ref is None or ref == "":
            raise bad_request("chat_id is empty")
        chat = self._chat(ref)
        if chat is None:
            raise bad_request("chat not found")
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        if chat.kicked:
            raise ApiError(403, chat.forbidden_reason())
        return chat

    # --- dispatch --------------------------------------------------------------------------------

    def _handle_api(self, path: str, content_type: str, body: bytes, query: str) -> Reply | Drop:
        match = _PATH.match(path)
        token = _TOKEN.match(match["token"]) if match else None
        if match is None or token is None:
            return 404, ApiError(404, "Not Found").payload()
        bot_id = int(token["bot_id"])
        method = self._method_names.get(match["method"].lower(), match["method"])
        received_at, now = time.time(), time.monotonic()
        try:
            params = decode_params(content_type, body, query)
        except ApiError as err:
            return err.status, err.payload()

        with self._changed:
            record = RequestRecord(method, received_at, loggable(params))
            self._requests.append(record)
            self._changed.notify_all()
            handler = self._handlers.get(method)
            if handler is None:
                record.status = 404
                return 404, ApiError(404, f"Not Found: the fake Bot API has no method {method}").payload()

            chat_key = None
            if params.get("chat_id") not in (None, ""):
                chat_key = self._chat_key(params["chat_id"])
            fingerprint = _fingerprint(method, params) if method in _CHAT_WRITE_METHODS else None
            if chat_key is not None and fingerprint is not None:
                told = self._told.get((chat_key, fingerprint))
                if told is not None and now < told:
                    self._early_retries += 1
                not_before = self._not_before.get(chat_key)
                if not_before is not None and now < not_before:
                    return self._throttle(record, chat_key, fingerprint, not_before - now, "flood_wait")

            fault = self._matching_fault(method, chat_key)
            if fault is not None and fault.kind in _PRE_FAULTS:
                fault.hits += 1
                record.fault = fault.kind
                if fault.kind == "drop_before":
                    return DROP
                if fault.kind == "429":
                    return self._throttle(record, chat_key, fingerprint, fault.retry_after, "injected")
                error = self._fault_error(fault, chat_key)
                record.status = error.status
                return error.status, error.payload()

            call = Call(method, self._bot_user(bot_id), params, received_at, now)
            try:
                result = handler(call)
            except ApiError as err:
                if err.status == 429 and err.parameters:
                    retry_after = err.parameters["retry_after"]
                    return self._throttle(record, chat_key, fingerprint, retry_after, "rate_limit")
                record.status = err.status
                return err.status, err.payload()
            if fault is not None:
                fault.hits += 1
                record.fault = fault.kind
                if isinstance(result, dict) and "message_id" in result and "chat" in result:
                    stored = self._messages.get((result["chat"]["id"], result["message_id"]))
                    if stored is not None:
                        stored.fault = fault.kind
            record.status = 200
            if chat_key is not None and fingerprint is not None:
                self._told.pop((chat_key, fingerprint), None)
            if self.state_file is not None:
                self._state_dirty.set()

        if fault is not None and fault.kind == "drop_after_accept":
            record.status = None
            return DROP
        if fault is not None and fault.kind == "delay":
            self._stopping.wait(fault.delay)
        return 200, {"ok": True, "result": result}

    def _matching_fault(self, method: str, chat_key: int | str | None) -> Fault | None:
        for rule in self._faults:
            if rule.exhausted():
                continue
            if rule.methods is not None and method not in rule.methods:
                continue
            if rule.chat_id is not None and rule.chat_id != chat_key:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            return rule
        return None

    def _fault_error(self, fault: Fault, chat_key: int | str | None) -> ApiError:
        if fault.kind == "5xx":
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "Server Error"
            return ApiError(fault.status, fault.description or phrase)
        if fault.kind == "403":
            chat = self._chat(chat_key) if chat_key is not None else None
            reason = chat.forbidden_reason() if chat else "Forbidden: bot was kicked from the channel chat"
            return ApiError(403, fault.description or reason)
        return ApiError(400, fault.description or "Bad Request: injected fault")

    def _throttle(
        self,
        record: RequestRecord,
        chat_key: int | str | None,
        fingerprint: str | None,
        seconds: float,
        reason: str,
    ) -> Reply:
        retry_after = _whole_seconds(seconds)
        issued = time.monotonic()
        if chat_key is not None and fingerprint is not None:
            # The chat's flood wait keeps its deadline: answers during it report the rest, rounded up.
            current = self._not_before.get(chat_key)
            if current is None or current <= issued:
                self._not_before[chat_key] = issued + retry_after
            self._told[(chat_key, fingerprint)] = issued + retry_after
        self._throttled.append(Throttle(record.method, chat_key, retry_after, reason, time.time()))
        record.status = 429
        error = ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        return 429, error.payload()

    def _bot_user(self, bot_id: int) -> dict[str, Any]:
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Hardcore Digest",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    @staticmethod
    def _scope_key(scope: dict[str, Any] | None) -> str:
        return json.dumps(scope or {"type": "default"}, sort_keys=True)

    # --- sending ---------------------------------------------------------------------------------

    def _check_rate(self, chat: Chat, now: float) -> None:
        limits = self.limits
        waits = [self._global_window.wait_needed(now, limits.global_limit, limits.global_window)]
        window = self._chat_windows.setdefault(chat.id, _Window())
        if chat.type == "private":
            waits.append(window.wait_needed(now, limits.private_limit, limits.private_window))
        else:
            waits.append(window.wait_needed(now, limits.group_limit, limits.group_window))
        wait = max(waits)
        if wait > 0:
            raise ApiError(429, "Too Many Requests", {"retry_after": _whole_seconds(wait)})
        self._global_window.add(now)
        window.add(now)

    def _record_message(
        self,
        call: Call,
        chat: Chat,
        *,
        text: str | None,
        caption: str | None,
        plain: str,
        entities: list[dict[str, Any]],
        photo: dict[str, Any] | None,
    ) -> dict[str, Any]:
        self._check_rate(chat, call.now)
        params = call.params
        chat.last_message_id += 1
        message = SentMessage(
            chat_id=chat.id,
            message_id=chat.last_message_id,
            method=call.method,
            text=text,
            caption=caption,
            plain_text=plain,
            entities=entities,
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            disable_notification=bool(params.get("disable_notification", False)),
            link_preview_options=params.get("link_preview_options"),
            disable_web_page_preview=params.get("disable_web_page_preview"),
            photo=photo,
            date=int(call.received_at),
            received_at=call.received_at,
            sender=call.bot,
        )
        self._messages[(chat.id, message.message_id)] = message
        self._sent.append(message)
        self._changed.notify_all()
        return self._message_json(message)

    def _message_json(self, message: SentMessage) -> dict[str, Any]:
        chat = self._chats[message.chat_id]
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "date": message.date,
            "chat": chat.to_json(),
        }
        if chat.type == "channel":
            data["sender_chat"] = chat.to_json()
        else:
            data["from"] = message.sender or self._bot_user(int(self.token.split(":")[0]))
        body_key = "caption" if message.photo is not None else "text"
        if message.photo is not None:
            data["photo"] = [message.photo["size"]]
        if message.plain_text or body_key == "text":
            data[body_key] = message.plain_text
        if message.entities:
            data["entities" if body_key == "text" else "caption_entities"] = message.entities
        markup = message.reply_markup
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            data["reply_markup"] = markup
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        return data

    def _api_sendMessage(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        text = call.params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("message text is empty")
        plain, entities = parse_within_limit(
            text, call.params.get("parse_mode"), call.params.get("entities"), TEXT_LIMIT, "message"
        )
        if not plain.strip():
            raise bad_request("message text is empty")
        return self._record_message(
            call, chat, text=text, caption=None, plain=plain, entities=entities, photo=None
        )

    def _api_sendPhoto(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        photo = call.params.get("photo")
        if isinstance(photo, str) and photo.startswith("attach://"):
            photo = call.params.get(photo.removeprefix("attach://"))
        if isinstance(photo, UploadedFile):
            source = {"source": "upload", "filename": photo.filename, "bytes": len(photo.data)}
        elif isinstance(photo, str) and photo:
            source = {"source": "url" if "://" in photo else "file_id", "value": photo}
        else:
            raise bad_request("there is no photo in the request")
        caption = call.params.get("caption")
        plain, entities = "", []
        if isinstance(caption, str) and caption:
            plain, entities = parse_within_limit(
                caption,
                call.params.get("parse_mode"),
                call.params.get("caption_entities"),
                CAPTION_LIMIT,
                "message caption",
            )
        number = next(self._file_ids)
        source["size"] = {
            "file_id": f"AgACAgIAAxkBAAI{number:08d}",
            "file_unique_id": f"AQAD{number:08d}",
            "width": 1280,
            "height": 720,
            "file_size": source.get("bytes", 65536),
        }
        return self._record_message(
            call, chat, text=None, caption=caption, plain=plain, entities=entities, photo=source
        )

    def _api_sendChatAction(self, call: Call) -> bool:
        self._target_chat(call.params)
        return True

    # --- editing ---------------------------------------------------------------------------------

    def _message_to_edit(self, params: dict[str, Any], missing: str) -> SentMessage:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        message = self._messages.get((chat.id, message_id)) if isinstance(message_id, int) else None
        if message is None or message.deleted:
            if (chat.id, message_id) in self._user_messages:
                raise bad_request("message can't be edited")
            raise bad_request(missing)
        return message

    def _apply_edit(
        self, call: Call, message: SentMessage | None, changes: dict[str, Any]
    ) -> dict[str, Any] | bool:
        params = call.params
        self._edits.append(
            Edit(
                method=call.method,
                chat_id=message.chat_id if message else None,
                message_id=message.message_id if message else None,
                inline_message_id=params.get("inline_message_id"),
                text=params.get("text"),
                caption=params.get("caption"),
                parse_mode=params.get("parse_mode"),
                reply_markup=params.get("reply_markup"),
                received_at=call.received_at,
            )
        )
        self._changed.notify_all()
        if message is None:
            return True
        before = (message.plain_text, message.entities, message.reply_markup)
        after = (
            changes.get("plain_text", message.plain_text),
            changes.get("entities", message.entities),
            params.get("reply_markup"),
        )
        if before == after:
            self._edits.pop()
            raise bad_request(
                "message is not modified: specified new message content and reply markup are exactly the "
                "same as a current content and reply markup of the message"
            )
        for key, value in changes.items():
            setattr(message, key, value)
        message.reply_markup = params.get("reply_markup")
        message.edit_date = int(call.received_at)
        return self._message_json(message)

    def _api_editMessageText(self, call: Call) -> dict[str, Any] | bool:
        text = call.params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("message text is empty")
        plain, entities = parse_within_limit(
            text, call.params.get("parse_mode"), call.params.get("entities"), TEXT_LIMIT, "message"
        )
        if call.params.get("inline_message_id"):
            return self._apply_edit(call, None, {})
        message = self._message_to_edit(call.params, "message to edit not found")
        if message.photo is not None:
            raise bad_request("there is no text in the message to edit")
        changes = {
            "text": text,
            "plain_text": plain,
            "entities": entities,
            "parse_mode": call.params.get("parse_mode"),
        }
        return self._apply_edit(call, message, changes)

    def _api_editMessageCaption(self, call: Call) -> dict[str, Any] | bool:
        caption = call.params.get("caption") or ""
        plain, entities = parse_within_limit(
            caption,
            call.params.get("parse_mode"),
            call.params.get("caption_entities"),
            CAPTION_LIMIT,
            "message caption",
        )
        if call.params.get("inline_message_id"):
            return self._apply_edit(call, None, {})
        message = self._message_to_edit(call.params, "message to edit not found")
        if message.photo is None:
            raise bad_request("there is no caption in the message to edit")
        changes = {"caption": caption, "plain_text": plain, "entities": entities}
        return self._apply_edit(call, message, changes)

    def _api_editMessageReplyMarkup(self, call: Call) -> dict[str, Any] | bool:
        if call.params.get("inline_message_id"):
            return self._apply_edit(call, None, {})
        message = self._message_to_edit(call.params, "message to edit not found")
        return self._apply_edit(call, message, {})

    def _api_deleteMessage(self, call: Call) -> bool:
        chat = self._target_chat(call.params)
        message_id = call.params.get("message_id")
        if not isinstance(message_id, int):
            raise bad_request("message identifier is not specified")
        key = (chat.id, message_id)
        message = self._messages.get(key)
        if message is not None and not message.deleted:
            message.deleted = True
        elif self._user_messages.pop(key, None) is None:
            raise bad_request("message to delete not found")
        self._deleted.append(key)
        self._changed.notify_all()
        return True

    # --- other methods ---------------------------------------------------------------------------

    def _api_getMe(self, call: Call) -> dict[str, Any]:
        return call.bot

    def _api_logOut(self, call: Call) -> bool:
        return True

    def _api_close(self, call: Call) -> bool:
        return True

    def _api_deleteWebhook(self, call: Call) -> bool:
        if call.params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _api_getWebhookInfo(self, call: Call) -> dict[str, Any]:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _api_getUpdates(self, call: Call) -> list[dict[str, Any]]:
        params = call.params
        # A newer getUpdates ends an older one, as on Telegram: only one poller may run.
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed.notify_all()
        offset = params.get("offset")
        if isinstance(offset, int) and offset < 0:
            del self._updates[: max(0, len(self._updates) + offset)]
        elif isinstance(offset, int):
            self._updates[:] = [u for u in self._updates if u["update_id"] >= offset]
        if "allowed_updates" in params and isinstance(params["allowed_updates"], list):
            self._allowed_updates = params["allowed_updates"] or None
        limit = min(max(int(params.get("limit", 100)), 1), 100)
        deadline = call.now + max(0.0, float(params.get("timeout", 0)))
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
                    "is running",
                )
            batch = [u for u in self._updates if self._update_allowed(u)][:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._stopping.is_set():
                return batch
            self._changed.wait(remaining)

    def _update_allowed(self, update: dict[str, Any]) -> bool:
        if not self._allowed_updates:
            return True
        return any(kind in update for kind in self._allowed_updates)

    def _api_getChat(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        return {
            **chat.to_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _api_answerCallbackQuery(self, call: Call) -> bool:
        query_id = str(call.params.get("callback_query_id", ""))
        if query_id not in self._callback_ids:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        self._callback_ids.discard(query_id)
        self._answered_callbacks.append(
            CallbackAnswer(
                callback_query_id=query_id,
                text=call.params.get("text"),
                show_alert=bool(call.params.get("show_alert", False)),
                url=call.params.get("url"),
                cache_time=call.params.get("cache_time"),
                received_at=call.received_at,
            )
        )
        self._changed.notify_all()
        return True

    def _api_answerInlineQuery(self, call: Call) -> bool:
        query_id = str(call.params.get("inline_query_id", ""))
        if query_id not in self._inline_ids:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        results = call.params.get("results")
        if not isinstance(results, list):
            raise bad_request("can't parse results JSON object")
        self._inline_ids.discard(query_id)
        self._inline_answers.append(
            InlineAnswer(
                inline_query_id=query_id,
                results=results,
                cache_time=call.params.get("cache_time"),
                is_personal=bool(call.params.get("is_personal", False)),
                next_offset=call.params.get("next_offset"),
                button=call.params.get("button"),
                received_at=call.received_at,
            )
        )
        self._changed.notify_all()
        return True

    def _api_setMyCommands(self, call: Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.match(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = (self._scope_key(call.params.get("scope")), call.params.get("language_code") or "")
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _api_deleteMyCommands(self, call: Call) -> bool:
        key = (self._scope_key(call.params.get("scope")), call.params.get("language_code") or "")
        self._commands.pop(key, None)
        return True

    def _api_getMyCommands(self, call: Call) -> list[dict[str, Any]]:
        key = (self._scope_key(call.params.get("scope")), call.params.get("language_code") or "")
        return list(self._commands.get(key, []))

    # --- control API (for a fake running in another process) ------------------------------------

    def _handle_control(self, http_method: str, name: str, body: bytes) -> Reply:
        try:
            args = json.loads(body) if body else {}
            if not isinstance(args, dict):
                raise ValueError("control body must be a JSON object")
            result = self._control(http_method, name, args)
        except (ValueError, KeyError, TypeError) as err:
            return 400, {"ok": False, "error_code": 400, "description": f"control/{name}: {err}"}
        if result is None:
            return 404, {"ok": False, "error_code": 404, "description": f"no control endpoint {name!r}"}
        return 200, {"ok": True, "result": result}

    def _control(self, http_method: str, name: str, args: dict[str, Any]) -> Any:
        if name == "state":
            return self.state()
        if http_method != "POST":
            return None
        if name == "dump":
            return self.dump_state(args.get("path"))
        if name == "inject":
            return asdict(self.inject(**args), dict_factory=_json_dict)
        if name == "clear_faults":
            self.clear_faults()
            return True
        if name == "channel":
            return self.add_channel(**args).to_json()
        if name == "group":
            return self.add_group(**args).to_json()
        if name == "user":
            return self.add_user(**args).to_json()
        if name == "kick":
            self.kick(args["chat"])
            return True
        if name == "unkick":
            self.unkick(args["chat"])
            return True
        if name == "push_message":
            return self.push_message(**args)
        if name == "limits":
            with self._lock:
                for key, value in args.items():
                    if not hasattr(self.limits, key):
                        raise KeyError(key)
                    setattr(self.limits, key, value)
                return asdict(self.limits)
        return None


_STATE_MESSAGE_KEYS = frozenset(
    {
        "message_id",
        "method",
        "text",
        "caption",
        "plain_text",
        "date",
        "received_at",
        "fault",
        "deleted",
        "edit_date",
    }
)


def _json_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in items}
