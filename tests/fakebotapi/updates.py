"""What users do, as the updates the bot will get: messages, button presses, inline queries.

A user who has not started the bot yet is added on their first update.
"""

from __future__ import annotations

import re
import time
from typing import Any

from tests.fakebotapi.entities import detect_entities, utf16_len
from tests.fakebotapi.records import Records, SentMessage


def _known_user(records: Records, user_id: int) -> dict[str, Any]:
    if user_id not in records.users:
        records.add_user(user_id)
    return records.users[user_id]


def push_message(
    records: Records, chat_id: int | str, from_user_id: int, text: str, reply_to_message_id: int | None
) -> dict[str, Any]:
    """Queue a user's text message; a leading ``/command`` gets its bot_command entity."""
    with records.lock:
        user = _known_user(records, from_user_id)
        chat = records.chat(chat_id)
        if chat is None:
            raise ValueError(f"unknown chat {chat_id!r}: add it with add_channel/add_group/add_user first")
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
            message["from"] = user
        # CommandHandler needs this entity; spelled out rather than left to TDLib's detection.
        command = re.match(r"/\S+", text)
        explicit = (
            [{"type": "bot_command", "offset": 0, "length": utf16_len(command.group())}] if command else []
        )
        entities = detect_entities(text, explicit)
        if entities:
            message["entities"] = entities
        if reply_to_message_id is not None:
            replied = records.messages.get((chat.id, reply_to_message_id))
            if replied is not None:
                message["reply_to_message"] = records.message_json(replied)
        records.user_messages[(chat.id, chat.last_message_id)] = message
        return records.push_update("channel_post" if chat.type == "channel" else "message", message)


def push_callback_query(
    records: Records, from_user_id: int, data: str, message: SentMessage | None
) -> dict[str, Any]:
    """Queue a press on an inline button of ``message`` (one the bot sent)."""
    with records.lock:
        user = _known_user(records, from_user_id)
        query_id = str(next(records.query_ids))
        records.callback_ids.add(query_id)
        payload: dict[str, Any] = {
            "id": query_id,
            "from": user,
            "chat_instance": str(message.chat_id if message else from_user_id),
            "data": data,
        }
        if message is not None:
            payload["message"] = records.message_json(message)
        return records.push_update("callback_query", payload)


def push_inline_query(records: Records, from_user_id: int, query: str, offset: str) -> dict[str, Any]:
    """Queue an inline query ``@bot query`` typed by a user."""
    with records.lock:
        user = _known_user(records, from_user_id)
        query_id = str(next(records.query_ids))
        records.inline_ids.add(query_id)
        payload = {"id": query_id, "from": user, "query": query, "offset": offset}
        return records.push_update("inline_query", payload)
