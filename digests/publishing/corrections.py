"""Corrections: sent posts whose items changed are re-rendered, and edits queued where they differ.

Run at the start of every drain. It looks only at items updated (and commentary written) since
the last look (its time is kept in the database; less a margin, for transactions that commit
late), so it costs an index range scan of the last few seconds' changes. Each post remembers the
newest change it was checked against, so a change is looked at once per post. The edits it
queues are sent by the same drain (bot.edit_sender).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import datetime

from digests.channels import settings_of
from digests.clock import utcnow
from digests.config import ChannelConfig
from digests.errors import DigestError
from digests.formatting.render import Renderer
from digests.items import ItemView
from digests.publishing.edits import (
    GroupAction,
    Misfit,
    Part,
    Shown,
    can_delete,
    edits_for,
    group_action,
    mark_due,
    needs_check,
    scan_from,
)
from digests.states import EDIT_FAILED, EDIT_NOT_FOUND, EDIT_TOO_LATE, MESSAGE_DELETED, SENT
from digests.store import edits as store
from digests.store.db import Database, Session
from digests.store.items import item_views
from digests.store.models import Post

log = logging.getLogger(__name__)
_GONE = (MESSAGE_DELETED, EDIT_NOT_FOUND)  # a post whose message is no longer in the chat


@dataclass
class CorrectionReport:
    edits: int = 0
    deletes: int = 0
    too_late: int = 0
    problems: list[str] = field(default_factory=list)  # for the admins: what could not be corrected


def queue_corrections(db: Database, render: Renderer, *, now: datetime | None = None) -> CorrectionReport:
    """Queue an edit (or deletion) for every sent post that no longer shows what its items say."""
    now = now or utcnow()
    report = CorrectionReport()
    with db.session() as session:
        if not store.corrections_turn(session):
            return report  # another worker is looking right now
        mark = store.read_mark(session)
        if mark is not None:
            candidates = store.sent_groups(session, store.changed_post_ids(session, scan_from(mark)))
            groups = [g for g in candidates
                      if any(needs_check(g.changed_at, p.checked_at, p.created_at) for p in _live(g))]
            # Every item to render, viewed at once: two queries, not two a post.
            views = {v.id: v for v in item_views(session, [i for g in groups for i in g.items])}
            for group in groups:
                try:
                    _correct(session, group, views, render, now, report)
                except DigestError as exc:  # a template that no longer renders: say so, go on
                    log.error("post %s could not be re-rendered: %s", group.posts[0].id, exc)
                    report.problems.append(f"Post {group.posts[0].id} could not be re-rendered: {exc}")
            for group in candidates:
                for post in group.posts:
                    store.mark_checked(post, group.changed_at)
        # The first look starts from now: posts sent before edits existed are not all re-rendered.
        if mark_due(mark, now):
            store.write_mark(session, now)
    return report


def _live(group: store.SentGroup) -> list[Post]:
    """The group's posts whose message is in the chat."""
    return [p for p in group.posts if p.state == SENT and p.edit_state not in _GONE]


def _correct(session: Session, group: store.SentGroup, views: dict[int, ItemView], render: Renderer,
             now: datetime, report: CorrectionReport) -> None:
    live_posts = _live(group)
    settings = settings_of(group.channel)
    removed = sum(1 for item in group.items if item.removed)
    action = group_action(settings.on_change, settings.on_remove, items=len(group.items), removed=removed)
    if action is GroupAction.DELETE:
        for post in live_posts:
            _queue_delete(session, group, post, now, report)
        return
    if action is GroupAction.NOTHING:
        return
    items = group.items if action is GroupAction.RENDER_ALL else [i for i in group.items if not i.removed]
    first = group.posts[0]
    shown_views = _keep_photo([views[i.id] for i in items], first)
    rendered = render(shown_views, _settings_for(settings, first), first.digest_number)
    shown = [Shown(p.id, p in live_posts, p.photo, _target_hash(group, p)) for p in group.posts]
    planned = edits_for(shown, [Part(r.html, r.photo) for r in rendered])
    if isinstance(planned, Misfit):
        if any(p.edit_state != EDIT_FAILED or p.edit_error != planned.reason for p in live_posts):
            for post in live_posts:
                store.queue_edit(session, post, action="edit", now=now, state=EDIT_FAILED, error=planned.reason)
            report.problems.append(f"Post {first.id} in {group.channel.name}: {planned.reason}")
        return
    by_id = {p.id: p for p in group.posts}
    for post_id, part in planned:
        store.queue_edit(session, by_id[post_id], action="edit", now=now, html=part.html, photo=part.photo,
                         queued=group.queued.get(post_id))
        report.edits += 1


def _queue_delete(session: Session, group: store.SentGroup, post: Post, now: datetime,
                  report: CorrectionReport) -> None:
    waiting = group.queued.get(post.id)
    if post.edit_state == EDIT_TOO_LATE or (waiting is not None and waiting.action == "delete"):
        return
    if can_delete(post.sent_at, now):
        store.queue_edit(session, post, action="delete", now=now, queued=waiting)
        report.deletes += 1
    else:
        store.queue_edit(session, post, action="delete", now=now, state=EDIT_TOO_LATE,
                         error="its items left the archive, but Telegram deletes messages only within 48 hours "
                               "of sending: the message stays")
        report.too_late += 1


def _target_hash(group: store.SentGroup, post: Post) -> str:
    """What the post's message is headed for: its newest queued edit, else what it shows."""
    waiting = group.queued.get(post.id)
    if waiting is not None:
        return waiting.content_hash or waiting.action
    return store.shown_hash(post)


def _settings_for(settings: ChannelConfig, post: Post) -> ChannelConfig:
    """The channel's settings in the shape the post was sent in (a message keeps its kind)."""
    if post.mode == "digest":
        return settings.model_copy(update={"mode": "digest"})
    return settings.model_copy(update={"mode": "single", "photo": post.photo is not None})


def _keep_photo(views: list[ItemView], post: Post) -> list[ItemView]:
    """A photo message cannot lose its photo: an item that lost its image is shown with the old one."""
    if post.mode == "digest" or post.photo is None:
        return views
    return [v if v.image else dataclasses.replace(v, image=post.photo) for v in views]
