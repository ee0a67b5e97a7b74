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
