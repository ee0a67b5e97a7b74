"""A channel is its chat: the numeric chat id, or an @username until Telegram has said which chat it is.

Delivery history belongs to that identity, not to the channel's name in config.yaml, so a
renamed channel keeps its history and two names for one chat are a configuration error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_NUMERIC = re.compile(r"-?\d+")


def is_username(chat_id: str | int) -> bool:
    return isinstance(chat_id, str) and chat_id.strip().startswith("@")


def is_numeric(key: str) -> bool:
    return _NUMERIC.fullmatch(key) is not None


def chat_key(chat_id: str | int, resolved: Mapping[str, str] | None = None) -> str:
    """The chat's identity: a numeric id as its digits, an @username (case-insensitive) as the id it resolved to.

    ``resolved`` maps lower-case @usernames to numeric chat ids; an unresolved @username is its own key.
    """
    text = str(chat_id).strip()
    if is_numeric(text):
        return str(int(text))
    name = text.lower()
    return (resolved or {}).get(name, name)


def shared_chat_errors(channels: Sequence[tuple[str, str | int]], keys: Sequence[str] | None = None) -> list[str]:
    """One line per channel whose chat an earlier channel already has, naming both by their config.yaml keys.

    ``channels`` are (name, chat_id) in config order; ``keys`` their identities when some were
    resolved (default: the chat ids as given).
    """
    keys = list(keys) if keys is not None else [chat_key(chat_id) for _, chat_id in channels]
    first: dict[str, int] = {}
    errors = []
    for index, ((name, chat_id), key) in enumerate(zip(channels, keys, strict=True)):
        if key not in first:
            first[key] = index
            continue
        earlier = first[key]
        other_name, other_chat = channels[earlier]
        same_form = chat_key(other_chat) == chat_key(chat_id)
        how = "" if same_form else f" (both are chat {key})"
        errors.append(f"channels[{index}:{name}].chat_id: {str(chat_id)!r} is also the chat of "
                      f"channels[{earlier}:{other_name}]{how}")
    return errors
