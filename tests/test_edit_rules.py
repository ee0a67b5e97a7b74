"""The rules of edits as pure functions: which posts change, how a message is edited, what an answer means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from telegram.error import BadRequest

from bot.telegram_errors import outcome_of
from digests.formatting.content_hash import content_hash
from digests.publishing.edits import (
    CHANGE_MARGIN,
    Done,
    EditMethod,
    Gone,
    GroupAction,
    Misfit,
    Part,
    Shown,
    TooLate,
    can_delete,
    decide_edit,
    edit_method,
    edits_for,
    group_action,
    needs_check,
    photo_after,
    reachable_photo,
)
from digests.publishing.retry import Fail, Kind, Outcome, PauseChannel, Policy, ResendPlain, RetryAt

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(max_attempts=3, backoff_seconds=5, backoff_max_seconds=60)


@pytest.mark.parametrize(("on_change", "on_remove", "removed", "action"), [
    ("edit", "keep", 0, GroupAction.RENDER_ALL),
    ("ignore", "keep", 0, GroupAction.NOTHING),
    ("edit", "keep", 3, GroupAction.RENDER_ALL),  # kept: the message stays, corrections still apply
    ("ignore", "keep", 3, GroupAction.NOTHING),
    ("edit", "delete", 3, GroupAction.DELETE),
    ("ignore", "delete", 3, GroupAction.DELETE),
    ("edit", "delete", 1, GroupAction.RENDER_LIVE),
    ("ignore", "delete", 1, GroupAction.RENDER_LIVE),
])
def test_group_action(on_change: str, on_remove: str, removed: int, action: GroupAction) -> None:
    assert group_action(on_change, on_remove, items=3, removed=removed) is action


def test_a_post_is_checked_once_per_change() -> None:
    created = NOW
    assert not needs_check(None, None, created)
    assert needs_check(created + timedelta(seconds=1), None, created)
    # Changes stamped a moment before the post was rendered may have committed after it read them.
    assert needs_check(created - CHANGE_MARGIN / 2, None, created)
    assert not needs_check(created - CHANGE_MARGIN * 2, None, created)
    checked = created + timedelta(hours=1)
    assert not needs_check(checked, checked, created)
    assert needs_check(checked + timedelta(microseconds=1), checked, created)


def test_a_message_keeps_its_kind() -> None:
    assert reachable_photo(None, "https://x/new.jpg") is None  # a text message cannot gain a photo
    assert reachable_photo("https://x/old.jpg", None) == "https://x/old.jpg"  # nor a photo lose it
    assert reachable_photo("https://x/old.jpg", "https://x/new.jpg") == "https://x/new.jpg"
    assert edit_method(None, None) is EditMethod.TEXT
    assert edit_method("https://x/a.jpg", "https://x/a.jpg") is EditMethod.CAPTION
    assert edit_method("https://x/a.jpg", None) is EditMethod.CAPTION
    assert edit_method("https://x/a.jpg", "https://x/b.jpg") is EditMethod.MEDIA
    assert photo_after(EditMethod.TEXT, "https://x/a.jpg", "https://x/a.jpg") is None
    assert photo_after(EditMethod.CAPTION, "https://x/a.jpg", None) == "https://x/a.jpg"
    assert photo_after(EditMethod.MEDIA, "https://x/a.jpg", "https://x/b.jpg") == "https://x/b.jpg"


def test_edits_for_changed_sent_parts_only() -> None:
    shown = [Shown(1, True, None, content_hash("<b>one</b>", None)),
             Shown(2, True, None, content_hash("<b>two</b>", None)),
             Shown(3, False, None, content_hash("<b>three</b>", None))]
    parts = [Part("<b>one</b>", None), Part("<b>TWO</b>", None), Part("<b>THREE</b>", None)]
    assert edits_for(shown, parts) == [(2, Part("<b>TWO</b>", None))]  # 3 was never sent
    assert edits_for(shown, parts[:2]) == Misfit(
        "the corrected post needs 2 message(s) but was sent as 3; the message(s) were not edited")
    # The photo a message can hold is part of what it is compared with.
    photo = [Shown(7, True, "https://x/a.jpg", content_hash("<b>p</b>", "https://x/a.jpg"))]
    assert edits_for(photo, [Part("<b>p</b>", None)]) == []


def test_deletion_window() -> None:
    assert can_delete(NOW - timedelta(hours=47, minutes=59), NOW)
    assert not can_delete(NOW - timedelta(hours=48), NOW)
    assert not can_delete(None, NOW)


@pytest.mark.parametrize(("message", "kind"), [
    ("Message is not modified: specified new message content and reply markup are exactly the same", Kind.NOT_MODIFIED),
    ("Message to edit not found", Kind.MESSAGE_GONE),
    ("Message to delete not found", Kind.MESSAGE_GONE),
    ("Message can't be deleted", Kind.TOO_LATE),
    ("There is no caption in the message to edit", Kind.OTHER_CONTENT),
    ("There is no text in the message to edit", Kind.OTHER_CONTENT),
    ("Can't parse entities: unsupported start tag", Kind.UNPARSABLE),
    ("Chat not found", Kind.CHAT_UNUSABLE),
])
def test_telegram_answers_to_edits(message: str, kind: Kind) -> None:
    assert outcome_of(BadRequest(message), "-100").kind is kind


@pytest.mark.parametrize(("outcome", "attempts", "decision"), [
    (Outcome(Kind.NOT_MODIFIED, "not modified"), 1, Done),
    (Outcome(Kind.MESSAGE_GONE, "Message to edit not found", "-100"), 1, Gone),
    (Outcome(Kind.TOO_LATE, "Message can't be deleted"), 1, TooLate),
    (Outcome(Kind.FORBIDDEN, "kicked", "-100"), 1, PauseChannel),
    (Outcome(Kind.CHAT_UNUSABLE, "chat not found", "-100"), 1, PauseChannel),
    (Outcome(Kind.UNPARSABLE, "can't parse entities"), 1, ResendPlain),
    (Outcome(Kind.BAD_REQUEST, "message caption is too long"), 1, Fail),
    (Outcome(Kind.OTHER, "boom"), 1, Fail),
])
def test_decide_edit(outcome: Outcome, attempts: int, decision: type) -> None:
    assert isinstance(decide_edit(outcome, attempts, POLICY, NOW), decision)


def test_an_edit_with_an_unknown_outcome_is_made_again_not_left_uncertain() -> None:
    for kind in (Kind.MAYBE_SENT, Kind.NOT_SENT):
        decision = decide_edit(Outcome(kind, "timed out"), 1, POLICY, NOW)
        assert decision == RetryAt(NOW + timedelta(seconds=5), "timed out")
        assert isinstance(decide_edit(Outcome(kind, "timed out"), 3, POLICY, NOW), Fail)


def test_a_flood_wait_on_an_edit_holds_everything_and_costs_no_attempt() -> None:
    decision = decide_edit(Outcome(Kind.FLOOD_WAIT, "429", "-100", retry_after=7), 1, POLICY, NOW)
    assert decision == RetryAt(NOW + timedelta(seconds=7), "flood control: retry after 7s", counts_attempt=False,
                               hold_all=True)


def test_a_failed_plain_text_edit_gives_up_unless_the_answer_says_done() -> None:
    assert isinstance(decide_edit(Outcome(Kind.OTHER, "x"), 1, POLICY, NOW, plain_resend=True), Fail)
    assert isinstance(decide_edit(Outcome(Kind.NOT_MODIFIED, "x"), 1, POLICY, NOW, plain_resend=True), Done)


def test_each_look_starts_a_margin_before_the_last_and_moves_its_mark_now_and_then() -> None:
    from digests.publishing.edits import mark_due, scan_from

    assert scan_from(NOW) == NOW - CHANGE_MARGIN
    assert mark_due(None, NOW)
    assert not mark_due(NOW, NOW + timedelta(seconds=1))
    assert mark_due(NOW, NOW + CHANGE_MARGIN)
