"""Bot API methods that put content into chats: sendMessage, sendPhoto, edits, deleteMessage.

Each validates as Telegram does (chat, markup, limits), counts against the send rate limits and
records what it accepted; an edit that changes nothing is refused, as Telegram refuses it, and
a message older than 48 hours can no longer be deleted.
"""

from __future__ import annotations

from typing import Any

from tests.fakebotapi.entities import CAPTION_LIMIT, TEXT_LIMIT, parse_within_limit
from tests.fakebotapi.errors import bad_request
from tests.fakebotapi.records import Chat, Edit, Records, SentMessage
from tests.fakebotapi.wire import Call, UploadedFile

DELETE_WINDOW = 48 * 3600  # seconds after sending that a message can be deleted for everyone


def _record_message(
    records: Records,
    call: Call,
    chat: Chat,
    *,
    text: str | None,
    caption: str | None,
    plain: str,
    entities: list[dict[str, Any]],
    photo: dict[str, Any] | None,
) -> dict[str, Any]:
    records.rate.admit(chat.id, chat.type == "private", call.now)
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
    records.messages[(chat.id, message.message_id)] = message
    records.sent.append(message)
    records.changed.notify_all()
    return records.message_json(message)


def send_message(records: Records, call: Call) -> dict[str, Any]:
    chat = records.target_chat(call.params)
    text = call.params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("message text is empty")
    plain, entities = parse_within_limit(
        text, call.params.get("parse_mode"), call.params.get("entities"), TEXT_LIMIT, "message"
    )
    if not plain.strip():
        raise bad_request("message text is empty")
    return _record_message(
        records, call, chat, text=text, caption=None, plain=plain, entities=entities, photo=None
    )


def send_photo(records: Records, call: Call) -> dict[str, Any]:
    chat = records.target_chat(call.params)
    photo = call.params.get("photo")
    if isinstance(photo, str) and photo.startswith("attach://"):
        photo = call.params.get(photo.removeprefix("attach://"))
    if isinstance(photo, UploadedFile):
        source: dict[str, Any] = {"source": "upload", "filename": photo.filename, "bytes": len(photo.data)}
    elif isinstance(photo, str) and photo:
        source = {"source": "url" if "://" in photo else "file_id", "value": photo}
    else:
        raise bad_request("there is no photo in the request")
    caption = call.params.get("caption")
    plain = ""
    entities: list[dict[str, Any]] = []
    if isinstance(caption, str) and caption:
        plain, entities = parse_within_limit(
            caption,
            call.params.get("parse_mode"),
            call.params.get("caption_entities"),
            CAPTION_LIMIT,
            "message caption",
        )
    number = next(records.file_ids)
    source["size"] = {
        "file_id": f"AgACAgIAAxkBAAI{number:08d}",
        "file_unique_id": f"AQAD{number:08d}",
        "width": 1280,
        "height": 720,
        "file_size": source.get("bytes", 65536),
    }
    return _record_message(
        records, call, chat, text=None, caption=caption, plain=plain, entities=entities, photo=source
    )


def send_chat_action(records: Records, call: Call) -> bool:
    records.target_chat(call.params)
    return True


def _message_to_edit(records: Records, params: dict[str, Any], missing: str) -> SentMessage:
    chat = records.target_chat(params)
    message_id = params.get("message_id")
    message = records.messages.get((chat.id, message_id)) if isinstance(message_id, int) else None
    if message is None or message.deleted:
        if (chat.id, message_id) in records.user_messages:
            raise bad_request("message can't be edited")
        raise bad_request(missing)
    return message


def _apply_edit(
    records: Records, call: Call, message: SentMessage | None, changes: dict[str, Any]
) -> dict[str, Any] | bool:
    params = call.params
    records.edits.append(
        Edit(
            method=call.method,
            chat_id=message.chat_id if message else None,
            message_id=message.message_id if message else None,
            inline_message_id=params.get("inline_message_id"),
            text=params.get("text"),
            caption=changes.get("caption", params.get("caption")),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            received_at=call.received_at,
            media=params.get("media"),
        )
    )
    records.changed.notify_all()
    if message is None:
        return True
    before = (message.plain_text, message.entities, message.reply_markup, message.photo)
    after = (
        changes.get("plain_text", message.plain_text),
        changes.get("entities", message.entities),
        params.get("reply_markup"),
        changes.get("photo", message.photo),
    )
    if before == after:
        records.edits.pop()
        raise bad_request(
            "message is not modified: specified new message content and reply markup are exactly the "
            "same as a current content and reply markup of the message"
        )
    for key, value in changes.items():
        setattr(message, key, value)
    message.reply_markup = params.get("reply_markup")
    message.edit_date = int(call.received_at)
    return records.message_json(message)


def edit_message_text(records: Records, call: Call) -> dict[str, Any] | bool:
    text = call.params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("message text is empty")
    plain, entities = parse_within_limit(
        text, call.params.get("parse_mode"), call.params.get("entities"), TEXT_LIMIT, "message"
    )
    if call.params.get("inline_message_id"):
        return _apply_edit(records, call, None, {})
    message = _message_to_edit(records, call.params, "message to edit not found")
    if message.photo is not None:
        raise bad_request("there is no text in the message to edit")
    changes = {
        "text": text,
        "plain_text": plain,
        "entities": entities,
        "parse_mode": call.params.get("parse_mode"),
    }
    return _apply_edit(records, call, message, changes)


def edit_message_caption(records: Records, call: Call) -> dict[str, Any] | bool:
    caption = call.params.get("caption") or ""
    plain, entities = parse_within_limit(
        caption,
        call.params.get("parse_mode"),
        call.params.get("caption_entities"),
        CAPTION_LIMIT,
        "message caption",
    )
    if call.params.get("inline_message_id"):
        return _apply_edit(records, call, None, {})
    message = _message_to_edit(records, call.params, "message to edit not found")
    if message.photo is None:
        raise bad_request("there is no caption in the message to edit")
    changes = {"caption": caption, "plain_text": plain, "entities": entities}
    return _apply_edit(records, call, message, changes)


def edit_message_media(records: Records, call: Call) -> dict[str, Any] | bool:
    media = call.params.get("media")
    if not isinstance(media, dict) or media.get("type") != "photo":
        raise bad_request("can't parse InputMedia: the fake takes photos only")
    photo = media.get("media")
    if not isinstance(photo, str) or not photo or photo.startswith("attach://"):
        raise bad_request("can't parse InputMedia: the fake takes photos by URL or file_id only")
    caption = media.get("caption") or ""
    plain, entities = parse_within_limit(
        caption, media.get("parse_mode"), media.get("caption_entities"), CAPTION_LIMIT, "message caption"
    )
    if call.params.get("inline_message_id"):
        return _apply_edit(records, call, None, {})
    message = _message_to_edit(records, call.params, "message to edit not found")
    if message.photo is None:
        raise bad_request("there is no media in the message to edit")
    same = photo == message.photo.get("value")
    source = message.photo if same else {**message.photo, "source": "url" if "://" in photo else "file_id",
                                         "value": photo}
    changes = {"caption": caption, "plain_text": plain, "entities": entities, "photo": source}
    return _apply_edit(records, call, message, changes)


def edit_message_reply_markup(records: Records, call: Call) -> dict[str, Any] | bool:
    if call.params.get("inline_message_id"):
        return _apply_edit(records, call, None, {})
    message = _message_to_edit(records, call.params, "message to edit not found")
    return _apply_edit(records, call, message, {})


def delete_message(records: Records, call: Call) -> bool:
    chat = records.target_chat(call.params)
    message_id = call.params.get("message_id")
    if not isinstance(message_id, int):
        raise bad_request("message identifier is not specified")
    key = (chat.id, message_id)
    message = records.messages.get(key)
    if message is not None and not message.deleted:
        if call.received_at - message.received_at >= DELETE_WINDOW:
            raise bad_request("message can't be deleted")
        message.deleted = True
    elif records.user_messages.pop(key, None) is None:
        raise bad_request("message to delete not found")
    records.deleted.append(key)
    records.changed.notify_all()
    return True
