"""What happens to a post after a failed request: the retry rules, as one pure function.

The publisher describes each failed request as an Outcome (in terms of delivery, not of
Telegram) and acts on the Decision `decide` returns. Every rule about retrying, giving up,
waiting, pausing a channel or resending as plain text lives here, so changing one is a change
to this module and its tests alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from digests.config import PublishConfig


class Kind(StrEnum):
    FLOOD_WAIT = "flood-wait"  # the platform asks us to wait retry_after seconds; nothing was sent
    NOT_SENT = "not-sent"  # the request never reached the platform: safe to send again
    MAYBE_SENT = "maybe-sent"  # the request may have arrived (timeout after sending, broken answer)
    FORBIDDEN = "forbidden"  # the bot was removed from the chat or blocked there
    CHAT_UNUSABLE = "chat-unusable"  # the chat is gone or the bot may not write in it
    UNPARSABLE = "unparsable"  # the platform could not parse the post's markup
    BAD_REQUEST = "bad-request"  # refused for good: sending the same again fails the same way
    # Edits and deletions of a sent message (digests.publishing.edits decides on them):
    NOT_MODIFIED = "not-modified"  # the message already shows this content
    MESSAGE_GONE = "message-gone"  # the message to edit or delete is no longer in the chat
    TOO_LATE = "too-late"  # past the time Telegram allows for it (deleting after 48 hours)
    OTHER_CONTENT = "other-content"  # a text edit of a photo message, or a caption edit of a text one
    OTHER = "other"  # any other error


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request: its kind, the error's text, and where it was sent."""

    kind: Kind
    detail: str = ""
    chat: str = ""
    retry_after: float = 0.0  # seconds, for a flood wait


@dataclass(frozen=True, slots=True)
class Policy:
    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float

    @classmethod
    def from_config(cls, publish: PublishConfig) -> Policy:
        return cls(publish.max_attempts, publish.backoff_seconds, publish.backoff_max_seconds)

    def backoff(self, attempts: int) -> timedelta:
        """The wait before attempt ``attempts + 1``: doubling from backoff_seconds, capped."""
        return timedelta(seconds=min(self.backoff_seconds * 2 ** (attempts - 1), self.backoff_max_seconds))


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Claimable again from ``at``; ``counts_attempt`` False gives back the attempt it was claimed with."""

    at: datetime
    reason: str
    counts_attempt: bool = True
    hold_all: bool = False  # nothing at all is sent before ``at`` (the limit is the bot's, not the chat's)


@dataclass(frozen=True, slots=True)
class Fail:
    reason: str


@dataclass(frozen=True, slots=True)
class Uncertain:
    """It may have been sent: never resent without an admin's word."""

    reason: str


@dataclass(frozen=True, slots=True)
class PauseChannel:
    """Hand the post back unsent and pause its channel until an admin resumes it."""

    reason: str


@dataclass(frozen=True, slots=True)
class ResendPlain:
    """Send the post again at once as plain text; ``note`` is what its record says on success."""

    note: str


Decision = RetryAt | Fail | Uncertain | PauseChannel | ResendPlain


def decide(outcome: Outcome, attempts: int, policy: Policy, now: datetime, *,
           plain_resend: bool = False) -> Decision:
    """What to do with a post whose request ended in ``outcome``.

    Args:
        attempts: requests made for the post so far, this one included.
        plain_resend: the request was the plain-text resend after an unparsable post.
    """
    kind, detail = outcome.kind, outcome.detail
    if plain_resend:
        return Fail(f"plain-text resend failed: {detail}")
    if kind is Kind.FLOOD_WAIT:
        # Waiting exactly as long as asked loses nothing, so the wait is no attempt.
        return RetryAt(now + timedelta(seconds=outcome.retry_after),
                       f"flood control: retry after {outcome.retry_after:g}s", counts_attempt=False, hold_all=True)
    if kind is Kind.FORBIDDEN:
        return PauseChannel(f"the bot cannot post in {outcome.chat}: {detail}")
    if kind is Kind.CHAT_UNUSABLE:
        return PauseChannel(f"{outcome.chat}: {detail}")
    if kind is Kind.UNPARSABLE:
        return ResendPlain(f"sent as plain text: {detail}")
    if kind is Kind.MAYBE_SENT:
        return Uncertain(f"outcome unknown: {detail}")
    if kind is Kind.NOT_SENT:
        if attempts >= policy.max_attempts:
            return Fail(f"gave up after {attempts} attempts: {detail}")
        return RetryAt(now + policy.backoff(attempts), detail)
    return Fail(detail)
