"""An admin's word on posts and items: confirm, resend or drop an uncertain or failed post; skip an item."""

from __future__ import annotations

from datetime import datetime

from digests.clock import utcnow
from digests.errors import NotFoundError
from digests.states import FAILED, PENDING, SENT, SKIPPED, UNCERTAIN
from digests.store import posts
from digests.store.audit import audit
from digests.store.channels import get_channel
from digests.store.db import Database
from digests.store.items import get_item
from digests.store.models import Post

RESOLVABLE = (UNCERTAIN, FAILED)  # the states only an admin moves a post out of


def resolve_post(db: Database, post_id: int, *, action: str, actor: str, message_id: int | None = None,
                 now: datetime | None = None) -> Post:
    """confirm (it was sent), resend (queue it again), or drop (skip it for good)."""
    now = now or utcnow()
    with db.session() as session:
        post = posts.get_post(session, post_id)
        if post is None or post.state not in RESOLVABLE:
            raise NotFoundError(f"no uncertain or failed post {post_id}", what="post", name=post_id)
        if action == "confirm":
            post.state, post.sent_at, post.message_id = SENT, now, message_id or post.message_id
        elif action == "resend":
            post.state, post.not_before, post.attempts = PENDING, None, 0
        elif action == "drop":
            post.state = SKIPPED
        else:
            raise ValueError(f"unknown action {action!r}: confirm, resend or drop")
        post.updated_at = now
        audit(session, actor, f"post-{action}", f"post:{post_id}", {"items": post.item_ids}, now=now)
        return post


def skip_item(db: Database, channel_name: str, item_id: int, *, actor: str, now: datetime | None = None) -> None:
    """Never post this item to the channel (a delivery row marked skipped, no post)."""
    now = now or utcnow()
    with db.session() as session:
        channel = get_channel(session, channel_name)
        get_item(session, item_id)
        if posts.has_delivery(session, channel.id, item_id):
            raise ValueError(f"item {item_id} is already scheduled or sent in {channel_name}")
        posts.add_skip(session, channel.id, item_id, now=now)
        audit(session, actor, "skip", f"channel:{channel_name}", {"item": item_id}, now=now, channel_id=channel.id)
