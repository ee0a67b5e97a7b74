"""What the fake knows and keeps: chats, users, the messages the bot sent, its calls, pending updates.

One lock guards it all; ``changed`` is notified whenever something is recorded, for the long
polls and the tests that wait on it.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.fakebotapi.errors import ApiError, bad_request
from tests.fakebotapi.throttling import RateLimiter, RateLimits


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
    media: dict[str, Any] | None = None  # editMessageMedia's InputMedia


@dataclass
class RequestRecord:
    """One Bot API call as it arrived; ``status`` is None while pending or when dropped."""

    method: str
    received_at: float
    params: dict[str, Any]
    status: int | None = None
    fault: str | None = None


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


def scope_key(scope: dict[str, Any] | None) -> str:
    """The key setMyCommands stores a BotCommandScope under."""
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


class Records:
    """The fake's world and its log; callers hold ``lock`` around every read and change."""

    def __init__(self, token: str, bot_username: str, limits: RateLimits) -> None:
        self.token = token
        self.bot_username = bot_username
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.stopping = threading.Event()  # set while the server shuts down: waits end early
        self.rate = RateLimiter(limits)  # sends accepted per window; the send methods check it

        self.chats: dict[int, Chat] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], SentMessage] = {}
        self.user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.sent: list[SentMessage] = []
        self.edits: list[Edit] = []
        self.deleted: list[tuple[int, int]] = []
        self.requests: list[RequestRecord] = []
        self.updates: list[dict[str, Any]] = []
        self.update_ids = itertools.count(1)
        self.poll_generation = 0  # bumped by each getUpdates; an older poll sees it and ends
        self.allowed_updates: list[str] | None = None
        self.webhook: dict[str, Any] | None = None  # what setWebhook was given; None: getUpdates works
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (scope key, language)
        self.callback_ids: set[str] = set()
        self.inline_ids: set[str] = set()
        self.query_ids = itertools.count(1)
        self.file_ids = itertools.count(1)
        self.answered_callbacks: list[CallbackAnswer] = []
        self.inline_answers: list[InlineAnswer] = []

    # --- chats and users -------------------------------------------------------------------------

    def add_chat(self, chat: Chat) -> Chat:
        with self.lock:
            if chat.username:
                chat.username = chat.username.lstrip("@")
            self.chats[chat.id] = chat
            return chat

    def add_user(
        self, user_id: int, first_name: str | None = None, username: str | None = None,
        language_code: str | None = None,
    ) -> Chat:
        """A user who has started the bot: the private chat shares the user's id.

        ``language_code`` (IETF tag, e.g. "en", "zh-hans") is sent as ``from.language_code`` of their updates.
        """
        with self.lock:
            self.users[user_id] = {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name or f"User {user_id}",
                **({"username": username} if username else {}),
                **({"language_code": language_code} if language_code else {}),
            }
            existing = self.chats.get(user_id)
            if existing is not None:
                return existing
            return self.add_chat(
                Chat(user_id, "private", first_name=self.users[user_id]["first_name"], username=username)
            )

    def chat(self, ref: int | str | None) -> Chat | None:
        """The chat with this id or ``@username``, if the fake knows it."""
        if ref is None:
            return None
        if isinstance(ref, int):
            return self.chats.get(ref)
        if re.fullmatch(r"-?\d+", ref):
            return self.chats.get(int(ref))
        name = ref.lstrip("@").lower()
        return next((c for c in self.chats.values() if c.username and c.username.lower() == name), None)

    def chat_or_raise(self, ref: int | str) -> Chat:
        chat = self.chat(ref)
        if chat is None:
            raise KeyError(f"unknown chat {ref!r}")
        return chat

    def chat_key(self, ref: int | str) -> int | str:
        """The chat's id when known, else ``ref`` itself: one key per chat for limits and faults."""
        chat = self.chat(ref)
        return chat.id if chat else ref

    def target_chat(self, params: dict[str, Any]) -> Chat:
        """The chat a call's ``chat_id`` names, or the error Telegram answers for it."""
        ref = params.get("chat_id")
        if ref is None or ref == "":
            raise bad_request("chat_id is empty")
        chat = self.chat(ref)
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

    def bot_user(self, bot_id: int) -> dict[str, Any]:
        """The bot's User object, as getMe answers."""
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

    # --- messages and updates --------------------------------------------------------------------

    def message_json(self, message: SentMessage) -> dict[str, Any]:
        """``message`` as a Bot API Message object."""
        chat = self.chats[message.chat_id]
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "date": message.date,
            "chat": chat.to_json(),
        }
        if chat.type == "channel":
            data["sender_chat"] = chat.to_json()
        else:
            data["from"] = message.sender or self.bot_user(int(self.token.split(":")[0]))
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

    def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update of ``kind`` ("message", "callback_query", ...) for getUpdates."""
        with self.changed:
            update = {"update_id": next(self.update_ids), kind: payload}
            self.updates.append(update)
            self.changed.notify_all()
            return update
