"""Which chat an @username is, asked of Telegram (getChat), so that a channel's identity is its numeric chat id."""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.error import TelegramError

from bot.config import BotConfig
from digests.chats import is_username

log = logging.getLogger(__name__)


async def resolve_usernames(bot: Bot, config: BotConfig) -> dict[str, str]:
    """Lower-case @username -> numeric chat id, for each configured @username Telegram resolves.

    One that does not resolve now (Telegram unreachable, the bot not yet in the channel) is
    left out: the channel keeps the id it resolved to before, or its @username as identity.
    """
    resolved: dict[str, str] = {}
    for channel in config.channels:
        chat = channel.chat_id
        if not is_username(chat) or str(chat).lower() in resolved:
            continue
        try:
            found = await bot.get_chat(chat)
        except TelegramError as exc:
            log.warning("channel %s: could not ask Telegram which chat %s is (%s)", channel.name, chat, exc)
            continue
        resolved[str(chat).lower()] = str(found.id)
    return resolved
