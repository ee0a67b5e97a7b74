"""The retry decider, and every shape of Telegram error the publisher maps to an outcome for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.telegram_errors import outcome_of, photo_refused
from digests.config import PublishConfig
from digests.publishing.retry import (
    Fail,
    Kind,
    Outcome,
    PauseChannel,
    Policy,
    ResendPlain,
    RetryAt,
    Uncertain,
    decide,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CHAT = "@digest_channel"
POLICY = Policy(max_attempts=4, backoff_seconds=5.0, backoff_max_seconds=30.0)


def caused(exc: TelegramError, cause: BaseException) -> TelegramError:
    """exc as PTB raises it: ``raise exc from cause``."""
    exc.__cause__ = cause
    return exc


def decision_for(exc: TelegramError, attempts: int = 1) -> object:
    return decide(outcome_of(exc, CHAT), attempts, POLICY, NOW)


def test_policy_comes_from_the_publish_config() -> None:
    config = PublishConfig(max_attempts=3, backoff_seconds=2, backoff_max_seconds=50)
    assert Policy.from_config(config) == Policy(3, 2.0, 50.0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # PTB warns that retry_after becomes a timedelta
def test_flood_wait_with_retry_after_in_seconds_waits_exactly_and_counts_no_attempt() -> None:
    outcome = outcome_of(RetryAfter(7), CHAT)
    assert (outcome.kind, outcome.retry_after) == (Kind.FLOOD_WAIT, 7.0)
    assert decide(outcome, 4, POLICY, NOW) == RetryAt(NOW + timedelta(seconds=7), "flood control: retry after 7s",
                                                      counts_attempt=False, hold_all=True)


def test_flood_wait_with_retry_after_as_a_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB then hands retry_after over as a timedelta
    exc = RetryAfter(timedelta(seconds=2.5))
    assert isinstance(exc.retry_after, timedelta)
    decision = decision_for(exc, attempts=POLICY.max_attempts)  # exhausted attempts do not matter here
    assert decision == RetryAt(NOW + timedelta(seconds=2.5), "flood control: retry after 2.5s",
                               counts_attempt=False, hold_all=True)


def test_bot_removed_pauses_the_channel() -> None:
    decision = decision_for(Forbidden("Forbidden: bot was kicked from the channel chat"))
    assert decision == PauseChannel(f"the bot cannot post in {CHAT}: Forbidden: bot was kicked from the channel chat")


@pytest.mark.parametrize("message", [
    "Bad Request: chat not found",
    "Bad Request: not enough rights to send text messages to the chat",
    "Bad Request: CHAT_WRITE_FORBIDDEN",
])
def test_a_chat_the_bot_cannot_use_pauses_the_channel(message: str) -> None:
    exc = BadRequest(message)
    assert outcome_of(exc, CHAT).kind is Kind.CHAT_UNUSABLE
    assert decision_for(exc) == PauseChannel(f"{CHAT}: {exc.message}")


@pytest.mark.parametrize("message", [
    "Bad Request: can't parse entities: unsupported start tag \"spoiler\" at byte offset 12",
    "Bad Request: can't parse entities: can't find end of the entity starting at byte offset 40",
    "Can't find end tag corresponding to start tag b",
    "Unsupported start tag \"marquee\" at byte offset 3",
])
def test_markup_telegram_cannot_parse_is_resent_as_plain_text(message: str) -> None:
    exc = BadRequest(message)
    assert outcome_of(exc, CHAT).kind is Kind.UNPARSABLE
    assert decision_for(exc) == ResendPlain(f"sent as plain text: {exc.message}")


def test_a_failed_plain_text_resend_fails_the_post_whatever_the_error() -> None:
    for again in (BadRequest("Bad Request: message is too long"), caused(NetworkError("boom"), httpx.ConnectError("x"))):
        assert decide(outcome_of(again, CHAT), 1, POLICY, NOW, plain_resend=True) == Fail(
            f"plain-text resend failed: {again}")


def test_any_other_bad_request_fails_at_once() -> None:
    exc = BadRequest("Bad Request: message is too long")
    assert outcome_of(exc, CHAT).kind is Kind.BAD_REQUEST
    assert decision_for(exc) == Fail("Message is too long")


def test_other_telegram_errors_fail() -> None:
    exc = ChatMigrated(-1001234)
    assert outcome_of(exc, CHAT).kind is Kind.OTHER
    assert decision_for(exc) == Fail(str(exc))


@pytest.mark.parametrize("cause", [httpx.ReadTimeout("read"), httpx.WriteTimeout("write"),
                                   httpx.RemoteProtocolError("server disconnected"), httpx.ReadError("reset")])
def test_an_error_after_the_request_left_is_uncertain(cause: Exception) -> None:
    exc = caused(TimedOut() if isinstance(cause, httpx.TimeoutException) else NetworkError(str(cause)), cause)
    assert outcome_of(exc, CHAT).kind is Kind.MAYBE_SENT
    assert decision_for(exc, attempts=1) == Uncertain(f"outcome unknown: {exc}")


@pytest.mark.parametrize("exc", [
    caused(NetworkError("httpx.ConnectError: connection refused"), httpx.ConnectError("refused")),
    caused(TimedOut(), httpx.ConnectTimeout("connect")),
    caused(TimedOut("Pool timeout"), httpx.PoolTimeout("pool")),
    TimedOut(),  # no cause: nothing says it left
])
def test_an_error_before_the_request_left_is_retried_with_backoff(exc: TelegramError) -> None:
    assert outcome_of(exc, CHAT).kind is Kind.NOT_SENT
    assert decision_for(exc, attempts=1) == RetryAt(NOW + timedelta(seconds=5), str(exc))


def test_backoff_doubles_per_attempt_up_to_its_cap() -> None:
    outcome = Outcome(Kind.NOT_SENT, "connection refused", CHAT)
    waits = [decide(outcome, attempts, Policy(10, 5.0, 30.0), NOW) for attempts in range(1, 6)]
    assert [w.at - NOW for w in waits if isinstance(w, RetryAt)] == [
        timedelta(seconds=s) for s in (5, 10, 20, 30, 30)]
    assert all(isinstance(w, RetryAt) and w.counts_attempt and not w.hold_all for w in waits)


def test_attempts_exhausted_fail_the_post() -> None:
    exc = caused(NetworkError("connection refused"), httpx.ConnectError("refused"))
    assert isinstance(decision_for(exc, attempts=POLICY.max_attempts - 1), RetryAt)
    assert decision_for(exc, attempts=POLICY.max_attempts) == Fail(
        f"gave up after {POLICY.max_attempts} attempts: connection refused")


def test_a_refused_photo_is_told_apart_from_other_bad_requests() -> None:
    assert photo_refused(BadRequest("Bad Request: wrong file identifier/HTTP URL specified"))
    assert photo_refused(BadRequest("Bad Request: PHOTO_INVALID_DIMENSIONS"))
    assert not photo_refused(BadRequest("Bad Request: chat not found"))
