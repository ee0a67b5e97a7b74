"""Reaching Telegram before the bot starts: what is wrong in one line, and `run`'s patient retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from bot.config import BotConfig
from bot.telegram_errors import TelegramUnusable, unusable

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0  # seconds between attempts, at most


def problem_of(exc: TelegramError, config: BotConfig) -> TelegramUnusable:
    """What a failed first request says about this config (see bot.telegram_errors.unusable)."""
    return unusable(exc, config.telegram.base_url, config.token)


async def check_telegram(config: BotConfig) -> None:
    """One getMe with the configured token and base_url; TelegramUnusable says what is wrong."""
    timeout = config.telegram.request_timeout
    request = HTTPXRequest(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout)
    bot = Bot(config.token, base_url=config.telegram.base_url, request=request, get_updates_request=request)
    try:
        await bot.get_me()
    except TelegramError as exc:
        raise problem_of(exc, config) from None
    finally:
        await request.shutdown()


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, 4 … 60)."""
    return min(MAX_BACKOFF, 2.0 ** (attempt - 1))


async def wait_for_telegram(config: BotConfig, *,
                            sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
    """check_telegram until it passes, waiting longer after each failure; a final problem raises at once."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await check_telegram(config)
        except TelegramUnusable as exc:
            if exc.final:
                raise
            delay = backoff(attempt)
            log.warning("%s; trying again in %g s (attempt %d failed)", exc, delay, attempt)
            await sleep(delay)
        else:
            if attempt > 1:
                log.info("reached Telegram at attempt %d", attempt)
            return
