"""SharedSendLimiter: two workers' limiters on one database share the bot's windows (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from bot.ratelimit import SharedSendLimiter, bot_key
from digests.store import sendlog
from digests.store.db import Database
from digests.store.models import SendReservation

TOKEN = "123456789:AAE-secret-part-of-the-token"
CHAT = "-1001234"


def limiters(db: Database, per_minute: float = 3, per_second: float = 30) -> tuple[SharedSendLimiter, ...]:
    return tuple(SharedSendLimiter(db, bot_key(TOKEN), per_second, per_minute) for _ in range(2))


async def test_the_second_worker_finds_the_chat_full_when_the_first_took_its_room(db: Database) -> None:
    first, second = limiters(db)
    assert await first.try_acquire(CHAT) and await first.try_acquire(CHAT)
    assert await second.try_acquire(CHAT)
    assert first.chat_wait(CHAT) == 0  # its own two sends leave room, as far as it knows alone
    assert not await first.try_acquire(CHAT)  # the shared window says no
    assert first.chat_wait(CHAT) > 0  # and it remembers, without asking again
    assert await first.try_acquire("-1009999")  # another chat has room
    await first.done(CHAT)
    await second.cancel(CHAT)  # never sent: its room is free again at once
    assert sendlog.counting(db, bot_key(TOKEN), CHAT) == 2
    assert await second.try_acquire(CHAT)
    assert not await second.try_acquire(CHAT)


async def test_replies_count_in_the_shared_global_window(db: Database) -> None:
    first, second = limiters(db, per_second=2)
    await first.acquire_overall()
    await second.acquire_overall()
    assert sendlog.counting(db, bot_key(TOKEN)) == 2
    await first.done_overall()
    await second.done_overall()
    assert sendlog.counting(db, bot_key(TOKEN)) == 2  # for a second after their answers


def test_the_bots_key_is_a_hash_of_its_id_never_the_token() -> None:
    key = bot_key(TOKEN)
    assert key == bot_key("123456789:another-token-of-the-same-bot") != bot_key("987654321:AAE-secret-part")
    assert "123456789" not in key and "secret" not in key


async def test_what_is_stored_names_no_token(db: Database) -> None:
    first, _ = limiters(db)
    assert await first.try_acquire(CHAT)
    with db.session() as session:
        keys = set(session.scalars(select(SendReservation.bot_key)))
    assert keys == {bot_key(TOKEN)} and not any("secret" in k or "123456789" in k for k in keys)
