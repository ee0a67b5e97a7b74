"""Logging for operators: text or JSON lines, the bot token masked everywhere, a start-up line per channel.

The token is a password: python-telegram-bot puts it into exception messages ("The token `…` was
rejected") and httpx logs every request URL, which holds it (…/bot<token>/sendMessage). Every
record is masked before any handler writes it, tracebacks included, and so is every error
message the CLI prints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo

from bot.config import ENV_TOKEN

if TYPE_CHECKING:
    from telegram.ext import Application, ContextTypes

log = logging.getLogger("digestbot")
MASK = "<token>"
# A Telegram bot token: the bot's numeric id, a colon, 35 characters of [A-Za-z0-9_-].
_TOKEN_SHAPE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
_secrets: set[str] = set()
LOG_FORMATS = ("text", "json")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_secret(value: str | None) -> None:
    """Mask this value in every log line and CLI error from now on."""
    if value and len(value) >= 4:
        _secrets.add(value)


def mask(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _TOKEN_SHAPE.sub(MASK, text)


class TokenFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack with the token masked (records are shared
    by every handler, so one filter protects them all)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and exc_info if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return mask(json.dumps(entry, ensure_ascii=False))


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def configure(level: int, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Root logging to stderr in the chosen format, every handler behind the token filter.

    Like logging.basicConfig, a root that already has handlers (a test runner's) keeps them;
    they get the filter too.
    """
    add_secret(os.environ.get(ENV_TOKEN))
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_digestbot", False)]
    for handler in ours:
        root.removeHandler(handler)
    if not root.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler._digestbot = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonFormatter() if log_format == "json" else _MaskingFormatter(_TEXT_FORMAT))
        root.addHandler(handler)
    for handler in root.handlers:
        if not any(isinstance(f, TokenFilter) for f in handler.filters):
            handler.addFilter(TokenFilter())
    root.setLevel(level)


# ---------------------------------------------------------------------------------------------
# the start-up line per channel


def slot_line(name: str, chat_id: str, timezone: str, schedule: list[str], next_runs: list[datetime | None],
              *, paused: bool, paused_reason: str | None) -> str:
    """``channel main (@chat): next slot 2024-05-11 18:00 CST (Asia/Shanghai) · schedule 0 9,18 * * *``."""
    upcoming = [moment for moment in next_runs if moment is not None]
    if upcoming:
        local = min(upcoming).astimezone(ZoneInfo(timezone))
        when = f"next slot {local:%Y-%m-%d %H:%M %Z} ({timezone})"
    else:
        when = "no slot scheduled"
    state = f" · paused ({paused_reason or 'by an admin'}): slots are skipped" if paused else ""
    return f"channel {name} ({chat_id}): {when} · schedule {'; '.join(schedule)}{state}"


async def log_next_slots(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Run once right after the scheduler started, when every slot job knows its next run."""
    from bot import scheduler
    from digests import views

    application: Application = context.application
    job_queue = application.job_queue
    assert job_queue is not None
    channels = await asyncio.to_thread(views.channel_summaries, application.bot_data["db"])
    if not channels:
        log.info("no channels configured: nothing will be posted (add one under channels: in config.yaml)")
    for channel in channels:
        runs = []
        for index in range(len(channel.schedule)):
            jobs = job_queue.get_jobs_by_name(scheduler.slot_job_id(channel.name, index))
            runs.append(jobs[0].next_t if jobs else None)
        log.info("%s", slot_line(channel.name, channel.chat_id, channel.timezone, channel.schedule, runs,
                                 paused=channel.paused, paused_reason=channel.paused_reason))


def schedule_startup_lines(application: Application) -> None:
    assert application.job_queue is not None
    application.job_queue.run_once(log_next_slots, when=0, name="startup-log")
