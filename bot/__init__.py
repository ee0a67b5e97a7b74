"""Everything that talks to Telegram: CLI, application wiring, publisher, scheduler, handlers."""

import os

# PTB 22.2+ returns durations such as RetryAfter.retry_after as int seconds with a deprecation
# warning unless this opts in to the timedelta that its next major version returns; every reader
# here (bot.telegram_errors, bot.reply_limiter) takes either. An operator's own setting wins.
os.environ.setdefault("PTB_TIMEDELTA", "1")
