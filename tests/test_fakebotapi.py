"""The fake Bot API behaves like Telegram as python-telegram-bot sees it."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputMediaPhoto,
    InputTextMessageContent,
    LinkPreviewOptions,
    Update,
)
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

from tests.fakebotapi import FakeBotApi, FakeBotApiProcess, ptb_request

# The shared fixture; drop this line once tests/conftest.py imports it.

CHANNEL = -1001234567890
USER = 4242

# PTB 22 warns on every RetryAfter that retry_after will become a timedelta; retry_seconds() takes both.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*attribute `retry_after`:telegram.warnings.PTBDeprecationWarning"
)


@pytest.fixture
async def bot(fake_bot_api: FakeBotApi) -> AsyncIterator[Bot]:
    fake_bot_api.add_channel(CHANNEL, username="main", title="Hardcore")
    fake_bot_api.add_user(USER, first_name="Ada")
    async with connect(fake_bot_api) as bot:
        yield bot


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def connect(fake: FakeBotApi | FakeBotApiProcess) -> Bot:
    return Bot(fake.token, base_url=fake.base_url, request=ptb_request(), get_updates_request=ptb_request())


def retry_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


def raw_post(http: httpx.Client, fake: FakeBotApi, method: str, **params: object) -> tuple[int, dict]:
    """Call the fake without PTB, to see Telegram's exact answer."""
    response = http.post(f"{fake.base_url}{fake.token}/{method}", json=params)
    return response.status_code, response.json()


# --- sending and validation ----------------------------------------------------------------------


async def test_get_me_describes_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot, me.supports_inline_queries) == (
        123,
        "hardcore_digest_bot",
        True,
        True,
    )


async def test_send_by_username_and_id_lands_in_one_channel_with_increasing_ids(
    bot: Bot, fake_bot_api: FakeBotApi
) -> None:
    first = await bot.send_message("@main", "<b>硬核</b> 观察 https://linux.cn", parse_mode="HTML")
    second = await bot.send_message(
        CHANNEL,
        "plain",
        disable_notification=True,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Read", url="https://linux.cn")]]),
    )

    assert (first.chat.id, first.message_id, second.message_id) == (CHANNEL, 1, 2)
    assert first.text == "硬核 观察 https://linux.cn"
    assert first.text_html.startswith("<b>硬核</b>")
    sent = fake_bot_api.replies("@main")
    assert [m.message_id for m in sent] == [1, 2]
    assert (sent[0].text, sent[0].parse_mode) == ("<b>硬核</b> 观察 https://linux.cn", "HTML")
    assert sent[1].disable_notification is True
    assert sent[1].link_preview_options == {"is_disabled": True}
    assert sent[1].reply_markup == {"inline_keyboard": [[{"text": "Read", "url": "https://linux.cn"}]]}
    assert second.reply_markup is not None


async def test_unparsable_html_is_refused_with_tdlib_reason(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    with pytest.raises(BadRequest, match="(?i)can't parse entities: can't find end tag"):
        await bot.send_message(CHANNEL, "<b>unclosed", parse_mode="HTML")
    assert fake_bot_api.sent == []


async def test_length_is_counted_after_parsing_in_utf16_units(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    await bot.send_message(CHANNEL, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(CHANNEL, "a" * 4097)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(CHANNEL, "😀" * 2049)  # 2049 characters, 4098 UTF-16 units
    with pytest.raises(BadRequest, match="(?i)message caption is too long"):
        await bot.send_photo(CHANNEL, "https://example.org/a.png", caption="字" * 1025)
    assert len(fake_bot_api.sent) == 1


async def test_photo_upload_is_read_from_multipart(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    message = await bot.send_photo(CHANNEL, png, caption="<i>cover</i>", parse_mode="HTML")

    assert message.caption == "cover" and message.photo
    recorded = fake_bot_api.replies(CHANNEL)[0]
    assert recorded.photo is not None and recorded.photo["bytes"] == len(png)
    assert (recorded.caption, recorded.plain_text) == ("<i>cover</i>", "cover")


async def test_unknown_chat_is_bad_request(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(-100999, "hello")
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message("@nobody", "hello")


async def test_kicked_channel_is_forbidden(bot: Bot, fake_bot_api: FakeBotApi, http: httpx.Client) -> None:
    fake_bot_api.kick("@main")
    with pytest.raises(Forbidden, match="bot was kicked from the channel chat"):
        await bot.send_message(CHANNEL, "hello")
    assert raw_post(http, fake_bot_api, "sendMessage", chat_id=CHANNEL, text="x") == (
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was kicked from the channel chat"},
    )


async def test_migrated_group_raises_chat_migrated(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.add_group(-555, supergroup=False)
    fake_bot_api.migrate(-555, -100555)
    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(-555, "hello")
    assert caught.value.new_chat_id == -100555
    await bot.send_message(-100555, "hello")


# --- faults --------------------------------------------------------------------------------------


async def test_injected_429_has_telegrams_shape_and_becomes_retry_after(
    bot: Bot, fake_bot_api: FakeBotApi, http: httpx.Client
) -> None:
    fake_bot_api.inject(method="sendMessage", fault="429", retry_after=7, times=1)
    assert raw_post(http, fake_bot_api, "sendMessage", chat_id=USER, text="x") == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        },
    )
    fake_bot_api.inject(method="sendMessage", fault="429", retry_after=2, times=1, chat_id="@main")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHANNEL, "hello")
    assert retry_seconds(caught.value) == 2
    assert fake_bot_api.count_429 == 2
    assert fake_bot_api.sent == []


async def test_drop_after_accept_records_the_message_but_the_client_sees_a_network_error(
    bot: Bot, fake_bot_api: FakeBotApi
) -> None:
    fake_bot_api.inject(method="sendMessage", fault="drop_after_accept")
    with pytest.raises(NetworkError):
        await bot.send_message(CHANNEL, "did it go out?")
    [recorded] = fake_bot_api.sent
    assert (recorded.plain_text, recorded.fault) == ("did it go out?", "drop_after_accept")

    # The fault was used up: the next send is answered normally, with the next id.
    assert (await bot.send_message(CHANNEL, "again")).message_id == 2


async def test_delay_past_the_client_timeout_still_sends(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.inject(method="sendMessage", fault="delay", delay=2.0)
    with pytest.raises(TimedOut):
        await bot.send_message(CHANNEL, "slow", read_timeout=0.2)
    assert [(m.plain_text, m.fault) for m in fake_bot_api.sent] == [("slow", "delay")]


async def test_drop_before_and_5xx_record_nothing(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.inject(method="sendMessage", fault="drop_before")
    fake_bot_api.inject(method="sendMessage", fault="5xx", times=2)
    for _ in range(3):
        with pytest.raises(NetworkError):
            await bot.send_message(CHANNEL, "lost")
    assert fake_bot_api.sent == []
    assert [r.status for r in fake_bot_api.calls("sendMessage")] == [None, 502, 502]
    await bot.send_message(CHANNEL, "through")
    assert len(fake_bot_api.sent) == 1


async def test_injected_403_is_forbidden(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.inject(method="sendPhoto", fault="403")
    with pytest.raises(Forbidden, match="kicked from the channel"):
        await bot.send_photo(CHANNEL, "https://example.org/a.png")


async def test_probabilistic_faults_repeat_for_a_seed(http: httpx.Client) -> None:
    def failures(seed: int) -> list[int]:
        with FakeBotApi(seed=seed) as fake:
            fake.add_channel(CHANNEL)
            fake.inject(method="sendMessage", fault="5xx", times=None, probability=0.3)
            return [
                i
                for i in range(30)
                if raw_post(http, fake, "sendMessage", chat_id=CHANNEL, text=str(i))[0] != 200
            ]

    first = failures(seed=7)
    assert first == failures(seed=7)
    assert 0 < len(first) < 30


# --- rate limits and flood waits -----------------------------------------------------------------


async def test_group_limit_answers_429_for_the_rest_of_the_minute(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.limits.group_limit = 3
    for i in range(3):
        await bot.send_message(CHANNEL, f"item {i}")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHANNEL, "one too many")
    assert 55 <= retry_seconds(caught.value) <= 60
    assert [t.reason for t in fake_bot_api.throttled] == ["rate_limit"]
    # Other chats are not held up by this channel's limit.
    await bot.send_message(USER, "private is fine")


async def test_global_limit_spans_chats(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.limits.global_limit = 2
    await bot.send_message(CHANNEL, "one")
    await bot.send_message(USER, "two")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHANNEL, "three")
    assert retry_seconds(caught.value) == 1


async def test_early_retries_are_counted_and_a_patient_retry_succeeds(
    bot: Bot, fake_bot_api: FakeBotApi
) -> None:
    fake_bot_api.inject(method="sendMessage", fault="429", retry_after=1)
    with pytest.raises(RetryAfter):
        await bot.send_message(CHANNEL, "first try")
    await bot.send_message(USER, "another chat is not held")
    with pytest.raises(RetryAfter):  # the channel's flood wait holds other content too
        await bot.send_message(CHANNEL, "something else")
    assert fake_bot_api.early_retries == 0
    with pytest.raises(RetryAfter):
        await bot.send_message("@main", "first try")
    assert fake_bot_api.early_retries == 1

    await asyncio.sleep(1.05)
    await bot.send_message(CHANNEL, "first try")
    assert fake_bot_api.early_retries == 1
    assert [m.plain_text for m in fake_bot_api.replies(CHANNEL)] == ["first try"]
    assert [t.reason for t in fake_bot_api.throttled] == ["injected", "flood_wait", "flood_wait"]


async def test_concurrent_sends_in_flight_are_not_early_retries(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.limits.group_limit = 3
    results = await asyncio.gather(
        *(bot.send_message(CHANNEL, f"item {i}") for i in range(12)), return_exceptions=True
    )
    assert sum(isinstance(r, RetryAfter) for r in results) == 9
    assert len(fake_bot_api.replies(CHANNEL)) == 3
    assert fake_bot_api.early_retries == 0


# --- updates -------------------------------------------------------------------------------------


async def test_long_poll_returns_a_pushed_update_and_offsets_confirm(
    bot: Bot, fake_bot_api: FakeBotApi
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=3))
    await fake_bot_api.wait_for_request("getUpdates")
    # Other calls are answered while the long poll waits.
    started = time.monotonic()
    await bot.send_message(CHANNEL, "during the poll")
    assert time.monotonic() - started < 1 and not poll.done()

    pushed = fake_bot_api.push_message(USER, USER, "/search 谷歌 AI")
    updates = await asyncio.wait_for(poll, 2)
    assert [u.update_id for u in updates] == [pushed["update_id"]]
    message = updates[0].message
    assert message is not None and message.from_user is not None
    assert (message.chat.type, message.from_user.id, message.text) == ("private", USER, "/search 谷歌 AI")
    assert message.entities[0].type == "bot_command" and message.entities[0].offset == 0

    # Not confirmed yet: returned again; an offset past it drops it.
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [pushed["update_id"]]
    assert await bot.get_updates(offset=pushed["update_id"] + 1, timeout=0) == ()
    assert fake_bot_api.pending_updates == []


async def test_a_second_poller_ends_the_first_with_conflict(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=3))
    await fake_bot_api.wait_for_request("getUpdates")
    async with connect(fake_bot_api) as other:
        await other.get_updates(timeout=0)
    with pytest.raises(Conflict):
        await asyncio.wait_for(first, 2)


async def test_application_answers_a_command_end_to_end(fake_bot_api: FakeBotApi) -> None:
    fake_bot_api.add_user(USER)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Greets."""
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"hello {' '.join(context.args or [])}")

    app = (
        ApplicationBuilder()
        .token(fake_bot_api.token)
        .base_url(fake_bot_api.base_url)
        .request(ptb_request())
        .get_updates_request(ptb_request())
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=1))
        fake_bot_api.push_message(USER, USER, "/start@hardcore_digest_bot there")
        [reply] = await fake_bot_api.wait_for(USER, 1, timeout=5)
        await app.updater.stop()
        await app.stop()
    assert reply.plain_text == "hello there"
    assert "deleteWebhook" in [r.method for r in fake_bot_api.requests]


async def test_buttons_edits_and_deletes(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="more:1")]])
    message = await bot.send_message(USER, "<b>Page 1</b>", parse_mode="HTML", reply_markup=keyboard)
    update = Update.de_json(
        fake_bot_api.push_callback_query(USER, "more:1", fake_bot_api.replies(USER)[0]), bot
    )
    assert update.callback_query is not None and update.callback_query.data == "more:1"

    await bot.answer_callback_query(update.callback_query.id, text="Loading")
    with pytest.raises(BadRequest, match="(?i)query id is invalid"):
        await bot.answer_callback_query(update.callback_query.id)
    page_2 = {"parse_mode": "HTML", "reply_markup": keyboard}
    edited = await bot.edit_message_text("<b>Page 2</b>", USER, message.message_id, **page_2)
    assert isinstance(edited, type(message)) and edited.text == "Page 2" and edited.reply_markup == keyboard
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("<b>Page 2</b>", USER, message.message_id, **page_2)
    # As on Telegram, an edit without reply_markup removes the keyboard.
    await bot.edit_message_reply_markup(USER, message.message_id, reply_markup=None)
    assert fake_bot_api.replies(USER)[0].reply_markup is None
    assert await bot.delete_message(USER, message.message_id)
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(USER, message.message_id)

    assert [a.text for a in fake_bot_api.answered_callbacks] == ["Loading"]
    assert [e.method for e in fake_bot_api.edits] == ["editMessageText", "editMessageReplyMarkup"]
    assert fake_bot_api.deleted == [(USER, message.message_id)]
    assert fake_bot_api.replies(USER)[0].deleted


async def test_photo_edits_and_the_limits_of_editing(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    """Captions and photos are edited apart from texts; messages gone or too old say so as Telegram does."""
    photo = await bot.send_photo(CHANNEL, "https://img.example.com/a.jpg", caption="<b>A</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)there is no text in the message to edit"):
        await bot.edit_message_text("B", CHANNEL, photo.message_id)
    edited = await bot.edit_message_caption(CHANNEL, photo.message_id, caption="<b>B</b>", parse_mode="HTML")
    assert isinstance(edited, type(photo)) and edited.caption == "B"
    media = InputMediaPhoto("https://img.example.com/c.jpg", caption="<i>C</i>", parse_mode="HTML")
    edited = await bot.edit_message_media(media, CHANNEL, photo.message_id)
    assert isinstance(edited, type(photo)) and edited.caption == "C"
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_media(media, CHANNEL, photo.message_id)
    [stored] = fake_bot_api.replies(CHANNEL)
    assert stored.photo is not None and stored.photo["value"] == "https://img.example.com/c.jpg"
    assert [(e.method, e.caption) for e in fake_bot_api.edits] == [("editMessageCaption", "<b>B</b>"),
                                                                   ("editMessageMedia", "<i>C</i>")]
    text = await bot.send_message(CHANNEL, "plain")
    with pytest.raises(BadRequest, match="(?i)there is no media in the message to edit"):
        await bot.edit_message_media(media, CHANNEL, text.message_id)

    # Someone else deleted it: edits find no message.
    fake_bot_api.remove_message(CHANNEL, text.message_id)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("again", CHANNEL, text.message_id)
    # Telegram deletes for everyone only within 48 hours of sending.
    fake_bot_api.age_message(CHANNEL, photo.message_id, 48 * 3600)
    with pytest.raises(BadRequest, match="(?i)message can't be deleted"):
        await bot.delete_message(CHANNEL, photo.message_id)
    assert fake_bot_api.deleted == [] and not stored.deleted


async def test_inline_query_answer_is_recorded(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    update = Update.de_json(fake_bot_api.push_inline_query(USER, "开源"), bot)
    assert update.inline_query is not None and update.inline_query.query == "开源"
    result = InlineQueryResultArticle(
        "1", "Open source", InputTextMessageContent("<b>开源</b>", parse_mode="HTML")
    )
    await bot.answer_inline_query(update.inline_query.id, [result], cache_time=0)
    [answer] = fake_bot_api.inline_answers
    assert answer.results[0]["title"] == "Open source"


async def test_commands_are_kept_per_scope(bot: Bot, fake_bot_api: FakeBotApi) -> None:
    await bot.set_my_commands([BotCommand("search", "Search the archive")])
    await bot.set_my_commands(
        [BotCommand("search", "Search"), BotCommand("stats", "Stats")], scope=BotCommandScopeAllPrivateChats()
    )
    assert [c.command for c in await bot.get_my_commands()] == ["search"]
    assert fake_bot_api.my_commands({"type": "all_private_chats"}) == [
        {"command": "search", "description": "Search"},
        {"command": "stats", "description": "Stats"},
    ]
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Bad Command", "x")])


# --- standalone ----------------------------------------------------------------------------------


async def test_standalone_server_is_driven_by_its_control_api(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with FakeBotApiProcess(state_file) as fake:
        fake.control("channel", chat_id=CHANNEL, username="main")
        fake.control("user", user_id=USER)
        fake.control("inject", method="sendMessage", fault="429", retry_after=30, chat_id="@main")
        fake.control("push_message", chat_id=USER, from_user_id=USER, text="/start")
        async with connect(fake) as bot:
            with pytest.raises(RetryAfter):
                await bot.send_message("@main", "held back")
            await bot.send_message(USER, "<b>welcome</b>", parse_mode="HTML")
            [update] = await bot.get_updates(timeout=0)
            assert update.message is not None and update.message.text == "/start"

        live = fake.state()
        assert (live["count_429"], live["early_retries"]) == (1, 0)
        assert [m["plain_text"] for m in live["chats"][str(USER)]["messages"]] == ["welcome"]
    written = json.loads(state_file.read_text(encoding="utf-8"))
    assert written["chats"][str(USER)]["messages"][0]["message_id"] == 2  # after the user's /start
    assert written["chats"][str(CHANNEL)]["messages"] == []
