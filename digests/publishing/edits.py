"""Sent posts that follow their items: whether a post needs an edit, which one, and what follows it.

Pure rules, no I/O: the corrections pass (digests.publishing.corrections) asks them which posts
to re-render and what to queue, the edit sender (bot.edit_sender) asks them how to edit a
message and what to record after Telegram answered. An edit is idempotent, so unlike a send an
edit whose outcome is unknown is made again; there is no "uncertain" here. When several edits of
one post are queued the newest wins: queueing one supersedes the older ones still pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from digests.formatting.content_hash import content_hash
from digests.publishing.retry import Fail, Kind, Outcome, PauseChannel, Policy, ResendPlain, RetryAt

# Telegram deletes a message for everyone only within 48 hours of its sending.
DELETE_WINDOW = timedelta(hours=48)
# An ingest stamps items' updated_at when its transaction starts and commits a moment later, so
# a post planned meanwhile may have read them as they were though its created_at is newer. Changes
# stamped this close before a post's planning (or a look's mark) are looked at again: longer than
# any one document's ingest transaction, plus some clock skew between hosts.
CHANGE_MARGIN = timedelta(seconds=30)


class GroupAction(StrEnum):
    """What to do with a sent post (or a sent digest) whose items changed."""

    NOTHING = "nothing"
    RENDER_ALL = "render-all"  # re-render every item as it is now
    RENDER_LIVE = "render-live"  # re-render without the items removed from the archive
    DELETE = "delete"  # every item left the archive: delete the message(s)


def group_action(on_change: str, on_remove: str, *, items: int, removed: int) -> GroupAction:
    """The channel's rules (on_change edit|ignore, on_remove keep|delete) applied to a changed post.

    on_remove: delete takes removed items out of the channel: the message goes when all its items
    went, a digest loses the removed ones by an edit (whatever on_change says) when some did.
    """
    if on_remove == "delete" and removed:
        return GroupAction.DELETE if removed >= items else GroupAction.RENDER_LIVE
    return GroupAction.RENDER_ALL if on_change == "edit" else GroupAction.NOTHING


def needs_check(changed_at: datetime | None, checked_at: datetime | None, created_at: datetime) -> bool:
    """Whether a post's items (or their commentary) changed after it was last rendered or checked."""
    if changed_at is None:
        return False
    since = checked_at if checked_at is not None else created_at - CHANGE_MARGIN
    return changed_at > since


def scan_from(mark: datetime) -> datetime:
    """Where a look for changes starts: a margin before the last look, for transactions that commit late."""
    return mark - CHANGE_MARGIN


def mark_due(mark: datetime | None, now: datetime) -> bool:
    """Whether a look moves the mark to ``now``: not on every drain, which would write every time."""
    return mark is None or now - mark >= CHANGE_MARGIN / 6


def reachable_photo(shown: str | None, rendered: str | None) -> str | None:
    """The photo a message can hold after an edit: a text message cannot gain one, nor a photo lose it."""
    if shown is None:
        return None
    return rendered or shown


class EditMethod(StrEnum):
    TEXT = "editMessageText"
    CAPTION = "editMessageCaption"
    MEDIA = "editMessageMedia"  # a new photo with its caption


def edit_method(shown_photo: str | None, photo: str | None) -> EditMethod:
    """How to bring a message holding ``shown_photo`` to an edit whose photo is ``photo``."""
    if shown_photo is None:
        return EditMethod.TEXT
    if photo is not None and photo != shown_photo:
        return EditMethod.MEDIA
    return EditMethod.CAPTION


def photo_after(method: EditMethod, shown_photo: str | None, photo: str | None) -> str | None:
    """The photo the message holds once an edit by ``method`` went through."""
    if method is EditMethod.TEXT:
        return None
    if method is EditMethod.MEDIA:
        return photo
    return shown_photo


@dataclass(frozen=True, slots=True)
class Shown:
    """A post of a group as its message stands: sent or not, its photo, the content it is headed for.

    ``target_hash`` is the hash of the newest edit still to be made, else of what it shows.
    """

    post_id: int
    sent: bool
    photo: str | None
    target_hash: str


@dataclass(frozen=True, slots=True)
class Part:
    html: str
    photo: str | None


@dataclass(frozen=True, slots=True)
class Misfit:
    """The re-rendered group no longer maps onto its messages; nothing is edited."""

    reason: str


def edits_for(shown: Sequence[Shown], parts: Sequence[Part]) -> list[tuple[int, Part]] | Misfit:
    """(post id, new content) for each sent post of a group whose re-rendered part differs.

    A digest re-rendered whole must split into as many messages as it was sent in: messages can
    be edited, not added or merged.
    """
    if len(parts) != len(shown):
        return Misfit(f"the corrected post needs {len(parts)} message(s) but was sent as {len(shown)}; "
                      "the message(s) were not edited")
    edits: list[tuple[int, Part]] = []
    for post, part in zip(shown, parts, strict=True):
        target = Part(part.html, reachable_photo(post.photo, part.photo))
        if post.sent and content_hash(target.html, target.photo) != post.target_hash:
            edits.append((post.post_id, target))
    return edits


def can_delete(sent_at: datetime | None, now: datetime) -> bool:
    """Whether Telegram still deletes the message for everyone."""
    return sent_at is not None and now - sent_at < DELETE_WINDOW


# ---------------------------------------------------------------------------------------------
# After Telegram answered


@dataclass(frozen=True, slots=True)
class Done:
    """The message shows the edit (or is deleted); ``note`` is what the record says beside it."""

    note: str | None = None


@dataclass(frozen=True, slots=True)
class Gone:
    """The message is no longer in the chat: recorded, the admins told, nothing retried."""

    reason: str


@dataclass(frozen=True, slots=True)
class TooLate:
    """Telegram no longer allows it (a deletion past 48 hours): the message stays as it is."""

    reason: str


EditDecision = Done | Gone | TooLate | RetryAt | Fail | PauseChannel | ResendPlain


def decide_edit(outcome: Outcome, attempts: int, policy: Policy, now: datetime, *,
                plain_resend: bool = False) -> EditDecision:
    """What to do with an edit whose request ended in ``outcome``.

    Args:
        attempts: requests made for the edit so far, this one included.
        plain_resend: the request was the plain-text edit after HTML Telegram could not parse.
    """
    kind, detail = outcome.kind, outcome.detail
    if kind is Kind.NOT_MODIFIED:
        # The same content again: an earlier request of this edit went through, or nothing shows a change.
        return Done("Telegram: message is not modified (it already showed this)")
    if kind is Kind.FLOOD_WAIT:
        return RetryAt(now + timedelta(seconds=outcome.retry_after),
                       f"flood control: retry after {outcome.retry_after:g}s", counts_attempt=False, hold_all=True)
    if kind is Kind.MESSAGE_GONE:
        return Gone(f"the message is no longer in {outcome.chat}: {detail}")
    if kind is Kind.TOO_LATE:
        return TooLate(f"Telegram no longer allows it: {detail}")
    if plain_resend:
        return Fail(f"plain-text edit failed: {detail}")
    if kind is Kind.FORBIDDEN:
        return PauseChannel(f"the bot cannot post in {outcome.chat}: {detail}")
    if kind is Kind.CHAT_UNUSABLE:
        return PauseChannel(f"{outcome.chat}: {detail}")
    if kind is Kind.UNPARSABLE:
        return ResendPlain(f"edited as plain text: {detail}")
    if kind in (Kind.NOT_SENT, Kind.MAYBE_SENT):
        # Making an edit twice leaves the message as once: an unknown outcome is simply retried.
        if attempts >= policy.max_attempts:
            return Fail(f"gave up after {attempts} attempts: {detail}")
        return RetryAt(now + policy.backoff(attempts), detail)
    return Fail(detail)
