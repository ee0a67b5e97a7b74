"""Post states, a post being one Telegram message (one item, or a digest of several)."""

from __future__ import annotations

PENDING = "pending"  # created, not yet claimed
SENDING = "sending"  # claimed under a lease; a request may be in flight
SENT = "sent"
RETRY = "retry"  # failed transiently; claimable again after not_before
FAILED = "failed"  # gave up (attempts exhausted or permanent error); an admin can resend
UNCERTAIN = "uncertain"  # outcome unknown; never resent without an admin's word
DRY_RUN = "dry-run"  # "sent" to the terminal only
SKIPPED = "skipped"
POST_STATES = (PENDING, SENDING, SENT, RETRY, FAILED, UNCERTAIN, DRY_RUN, SKIPPED)
WAITING_STATES = (PENDING, RETRY, SENDING)  # not settled yet: still in the queue

# Edits of a sent post's message (the post_edits outbox). No "uncertain" here: an edit is
# idempotent, so one whose outcome is unknown is simply made again.
EDIT_PENDING = "pending"  # queued (or waiting out not_before), not claimed
EDIT_SENDING = "sending"  # claimed under a lease; a request may be in flight
EDIT_DONE = "done"  # the message shows it (Telegram's "message is not modified" included)
EDIT_FAILED = "failed"  # refused for good, or attempts exhausted
EDIT_NOT_FOUND = "not_found"  # the message is gone from the chat ("message to edit not found")
EDIT_TOO_LATE = "too_late"  # a deletion past Telegram's 48 hours: the message stays
EDIT_SUPERSEDED = "superseded"  # a newer edit of the same post was queued before it went out
EDIT_STATES = (EDIT_PENDING, EDIT_SENDING, EDIT_DONE, EDIT_FAILED, EDIT_NOT_FOUND, EDIT_TOO_LATE, EDIT_SUPERSEDED)
EDIT_ACTIONS = ("edit", "delete")
MESSAGE_DELETED = "deleted"  # a post's edit_state once its message was deleted
