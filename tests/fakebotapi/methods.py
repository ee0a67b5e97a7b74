"""The Bot API methods the fake answers: one handler each, ``handler(records, call) -> result``.

Sending, editing and deleting messages are in ``messages.py``; the rest (the bot itself,
updates, callback and inline answers, commands) is here. A handler raises ApiError for an
error answer; it runs with the records' lock held.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakebotapi import messages
from tests.fakebotapi.errors import ApiError, bad_request
from tests.fakebotapi.records import CallbackAnswer, InlineAnswer, Records, scope_key
from tests.fakebotapi.wire import Call

Handler = Callable[[Records, Call], Any]

_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


def get_me(records: Records, call: Call) -> dict[str, Any]:
    return call.bot


def log_out(records: Records, call: Call) -> bool:
    return True


def close(records: Records, call: Call) -> bool:
    return True


_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def set_webhook(records: Records, call: Call) -> bool:
    """Telegram's checks of a webhook, then it is kept: getUpdates answers 409 until deleteWebhook."""
    url = str(call.params.get("url") or "")
    if not url:
        raise bad_request("bad webhook: an empty URL was given; use deleteWebhook to remove the webhook")
    if not re.match(r"^https?://[^/\s]+", url):
        raise bad_request("bad webhook: failed to resolve host: Name or service not known")
    secret = call.params.get("secret_token")
    if secret is not None and not _SECRET_TOKEN.match(str(secret)):
        raise bad_request("bad webhook: secret token contains unallowed characters")
    if call.params.get("drop_pending_updates"):
        records.updates.clear()
    records.webhook = {
        "url": url,
        "secret_token": secret,
        "max_connections": call.params.get("max_connections"),
        "allowed_updates": call.params.get("allowed_updates"),
    }
    return True


def delete_webhook(records: Records, call: Call) -> bool:
    if call.params.get("drop_pending_updates"):
        records.updates.clear()
    records.webhook = None
    return True


def get_webhook_info(records: Records, call: Call) -> dict[str, Any]:
    url = records.webhook["url"] if records.webhook else ""
    return {"url": url, "has_custom_certificate": False, "pending_update_count": len(records.updates)}


def get_updates(records: Records, call: Call) -> list[dict[str, Any]]:
    params = call.params
    if records.webhook is not None:
        raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
                            "to delete the webhook first")
    # A newer getUpdates ends an older one, as on Telegram: only one poller may run.
    records.poll_generation += 1
    generation = records.poll_generation
    records.changed.notify_all()
    offset = params.get("offset")
    if isinstance(offset, int) and offset < 0:
        del records.updates[: max(0, len(records.updates) + offset)]
    elif isinstance(offset, int):
        records.updates[:] = [u for u in records.updates if u["update_id"] >= offset]
    if "allowed_updates" in params and isinstance(params["allowed_updates"], list):
        records.allowed_updates = params["allowed_updates"] or None
    limit = min(max(int(params.get("limit", 100)), 1), 100)
    deadline = call.now + max(0.0, float(params.get("timeout", 0)))
    while True:
        if generation != records.poll_generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
                "is running",
            )
        batch = [u for u in records.updates if _update_allowed(records, u)][:limit]
        remaining = deadline - time.monotonic()
        if batch or remaining <= 0 or records.stopping.is_set():
            return batch
        records.changed.wait(remaining)


def _update_allowed(records: Records, update: dict[str, Any]) -> bool:
    if not records.allowed_updates:
        return True
    return any(kind in update for kind in records.allowed_updates)


def get_chat(records: Records, call: Call) -> dict[str, Any]:
    chat = records.target_chat(call.params)
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


def answer_callback_query(records: Records, call: Call) -> bool:
    query_id = str(call.params.get("callback_query_id", ""))
    if query_id not in records.callback_ids:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    records.callback_ids.discard(query_id)
    records.answered_callbacks.append(
        CallbackAnswer(
            callback_query_id=query_id,
            text=call.params.get("text"),
            show_alert=bool(call.params.get("show_alert", False)),
            url=call.params.get("url"),
            cache_time=call.params.get("cache_time"),
            received_at=call.received_at,
        )
    )
    records.changed.notify_all()
    return True


def answer_inline_query(records: Records, call: Call) -> bool:
    query_id = str(call.params.get("inline_query_id", ""))
    if query_id not in records.inline_ids:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    results = call.params.get("results")
    if not isinstance(results, list):
        raise bad_request("can't parse results JSON object")
    records.inline_ids.discard(query_id)
    records.inline_answers.append(
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
    records.changed.notify_all()
    return True


def set_my_commands(records: Records, call: Call) -> bool:
    commands = call.params.get("commands")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    for command in commands:
        if not isinstance(command, dict) or not _COMMAND.match(str(command.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    key = (scope_key(call.params.get("scope")), call.params.get("language_code") or "")
    records.commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
    return True


def delete_my_commands(records: Records, call: Call) -> bool:
    key = (scope_key(call.params.get("scope")), call.params.get("language_code") or "")
    records.commands.pop(key, None)
    return True


def get_my_commands(records: Records, call: Call) -> list[dict[str, Any]]:
    key = (scope_key(call.params.get("scope")), call.params.get("language_code") or "")
    return list(records.commands.get(key, []))


HANDLERS: dict[str, Handler] = {
    "getMe": get_me,
    "logOut": log_out,
    "close": close,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "getUpdates": get_updates,
    "sendMessage": messages.send_message,
    "sendPhoto": messages.send_photo,
    "sendChatAction": messages.send_chat_action,
    "editMessageText": messages.edit_message_text,
    "editMessageCaption": messages.edit_message_caption,
    "editMessageMedia": messages.edit_message_media,
    "editMessageReplyMarkup": messages.edit_message_reply_markup,
    "deleteMessage": messages.delete_message,
    "getChat": get_chat,
    "answerCallbackQuery": answer_callback_query,
    "answerInlineQuery": answer_inline_query,
    "setMyCommands": set_my_commands,
    "deleteMyCommands": delete_my_commands,
    "getMyCommands": get_my_commands,
}
_SPELLING = {name.lower(): name for name in HANDLERS}


def canonical_name(method: str) -> str:
    """A method's Bot API spelling (Telegram reads names case-insensitively); unknown names as given."""
    return _SPELLING.get(method.lower(), method)
