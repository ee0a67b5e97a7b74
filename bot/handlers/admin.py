"""Admin commands: channels and their schedules, the queue, posting, commentary, uncertain posts, stats, ingest.

Every change goes to the database first (the database is what runs, across restarts), is applied to
the running JobQueue at once, and lands in the audit log. bot.commands lets only admins reach the
commands; the buttons check for themselves.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode

from bot import scheduler
from bot.handlers.common import (
    Context,
    UsageError,
    actor_of,
    admin_only,
    config_of,
    day_of,
    id_arg,
    link,
    post_url,
    problem_text,
    reply,
    run_db,
)
from bot.i18n import ENGLISH, N_, Translations
from bot.ids import BadId, parse_id
from bot.languages import translator
from digests import actions, views
from digests.config import ChannelConfig
from digests.errors import NotFoundError
from digests.formatting.telegram_html import visible_text
from digests.formatting.times import format_time
from digests.ingest.pipeline import IngestReport, ingest
from digests.publishing.review import resolve_post, skip_item
from digests.states import DRY_RUN, FAILED, PENDING, RETRY, SENDING, SENT, SKIPPED, UNCERTAIN
from digests.views import ChannelSummary

RESOLVE_ACTIONS = {"confirm": N_("Post {post} confirmed as sent by {actor}."),
                   "resend": N_("Post {post} queued to be sent again by {actor}."),
                   "drop": N_("Post {post} dropped by {actor}.")}
STATE_NAMES = {PENDING: N_("pending"), SENDING: N_("sending"), SENT: N_("sent"), RETRY: N_("retry"),
               FAILED: N_("failed"), UNCERTAIN: N_("uncertain"), DRY_RUN: N_("dry-run"), SKIPPED: N_("skipped")}
UNCERTAIN_SHOWN = 10
POSTNOW_WAIT = 10.0  # seconds /postnow waits to report how its posts went


def _state(state: str, t: Translations) -> str:
    return t.gettext(STATE_NAMES[state]) if state in STATE_NAMES else state


def _next_runs(context: Context, name: str, settings: ChannelConfig, t: Translations) -> list[str]:
    """When each schedule entry fires next, as the running JobQueue has it."""
    runs = []
    job_queue = context.job_queue
    for index, _entry in enumerate(settings.schedule):
        jobs = job_queue.get_jobs_by_name(scheduler.slot_job_id(name, index)) if job_queue else ()
        runs.append(format_time(jobs[0].next_t, settings.timezone) if jobs else t.gettext("not scheduled"))
    return runs


def _schedule_html(context: Context, name: str, settings: ChannelConfig, paused: bool, t: Translations) -> str:
    _ = t.gettext
    paused_mark = " · <b>" + html.escape(_("paused")) + "</b>" if paused else ""
    lines = [f"<b>{html.escape(name)}</b> · {html.escape(settings.timezone)}{paused_mark}"]
    for entry, run in zip(settings.schedule, _next_runs(context, name, settings, t), strict=True):
        lines.append(f"• <code>{html.escape(entry)}</code> — " + html.escape(_("next {time}").format(time=run)))
    return "\n".join(lines)


def _summary_html(summary: ChannelSummary, t: Translations) -> str:
    _ = t.gettext
    state = (_("paused ({reason})").format(reason=html.escape(summary.paused_reason or '')) if summary.paused
             else _("active"))
    if summary.retired_reason is not None:
        state = _("retired ({reason})").format(reason=html.escape(summary.retired_reason))
    last = _("never")
    if summary.last_post is not None:
        url = post_url(summary.last_post.chat_id, summary.last_post.message_id)
        when = format_time(summary.last_sent_at, summary.timezone)
        last = link(url, when) if url else html.escape(when)
    schedule = _("schedule: {schedule} ({timezone}) · {mode}, {per_slot} per slot").format(
        schedule=f"<code>{html.escape('; '.join(summary.schedule))}</code>",
        timezone=html.escape(summary.timezone), mode=summary.mode, per_slot=summary.per_slot)
    counts = _("waiting: {waiting} · sent: {sent} · last post: {last}").format(
        waiting=summary.waiting, sent=summary.sent, last=last)
    return (f"<b>{html.escape(summary.name)}</b> → <code>{html.escape(summary.chat_id)}</code> · {state}\n"
            f"{schedule}\n{counts}")


# ---------------------------------------------------------------------------------------------
# Channels and schedules


async def channels(update: Update, context: Context) -> None:
    """/channels: every channel, its schedule, queue and last post."""
    if context.args:
        raise UsageError()
    summaries = await run_db(context, views.channel_summaries)
    t = await translator(update, context)
    if not summaries:
        await reply(update, html.escape(t.gettext("No channels are configured (config.yaml: channels).")))
        return
    await reply(update, "\n\n".join(_summary_html(s, t) for s in summaries))


async def schedule(update: Update, context: Context) -> None:
    """/schedule CHANNEL [set CRON; CRON...]: show or replace a channel's schedule, effective at once."""
    args = context.args or []
    t = await translator(update, context)
    if len(args) == 1:
        try:
            settings, paused, _ = await run_db(context, views.channel_settings, args[0])
        except NotFoundError as exc:
            raise UsageError(exc) from None
        await reply(update, _schedule_html(context, args[0], settings, paused, t))
        return
    if len(args) < 3 or args[1].lower() != "set":
        raise UsageError()
    name = args[0]
    entries = [entry.strip() for entry in " ".join(args[2:]).split(";") if entry.strip()]
    try:
        settings = await run_db(context, actions.set_schedule, name, entries, actor=actor_of(update))
    except NotFoundError as exc:
        raise UsageError(exc) from None
    except ValueError as exc:
        raise UsageError(t.gettext("Schedule not changed: {error}").format(error=exc)) from None
    assert context.job_queue is not None
    scheduler.schedule_channel(context.job_queue, name, settings,
                               misfire_grace=config_of(context).publish.misfire_grace_seconds)
    _, paused, _ = await run_db(context, views.channel_settings, name)
    await reply(update, html.escape(t.gettext("Schedule saved and in effect:")) + "\n"
                + _schedule_html(context, name, settings, paused, t))


async def _set_paused(update: Update, context: Context, paused: bool) -> None:
    args = context.args or []
    if not args or (not paused and len(args) != 1):
        raise UsageError()
    name, actor = args[0], actor_of(update)
    reason = " ".join(args[1:]) or f"paused by {actor}"
    try:
        await run_db(context, actions.set_paused, name, paused, actor=actor, reason=reason if paused else None)
    except NotFoundError as exc:
        raise UsageError(exc) from None
    _ = (await translator(update, context)).gettext
    channel = f"<b>{html.escape(name)}</b>"
    if paused:
        await reply(update, _("{channel} is paused: nothing is posted until /resume {name}").format(
            channel=channel, name=html.escape(name)))
    else:
        await reply(update, _("{channel} is posting again; planned posts go out within seconds.").format(
            channel=channel))


async def pause(update: Update, context: Context) -> None:
    """/pause CHANNEL [REASON]: stop posting to a channel (kept across restarts)."""
    await _set_paused(update, context, True)


async def resume(update: Update, context: Context) -> None:
    """/resume CHANNEL: post to a paused channel again."""
    await _set_paused(update, context, False)


# ---------------------------------------------------------------------------------------------
# The queue: preview, skip, post now


async def queue(update: Update, context: Context) -> None:
    """/queue CHANNEL: the next items and the next slot's posts as they would look."""
    args = context.args or []
    if len(args) != 1:
        raise UsageError()
    try:
        preview = await run_db(context, views.queue_preview, args[0])
    except NotFoundError as exc:
        raise UsageError(exc) from None
    t = await translator(update, context)
    _ = t.gettext
    head = "<b>" + html.escape(_("Queue of {channel}").format(channel=preview.channel)) + "</b>"
    lines = [head + (" " + html.escape(_("(paused)")) if preview.paused else "")]
    if preview.planned:
        lines.append(t.ngettext("{count} planned post waiting to be sent.", "{count} planned posts waiting to be sent.",
                                preview.planned).format(count=preview.planned))
    if not preview.upcoming:
        lines.append(_("Nothing is due: every eligible item has been posted."))
        await reply(update, "\n".join(lines))
        return
    lines.append(_("Next items:"))
    for view in preview.upcoming:
        lines.append(f"• ID {view.id} · {day_of(view.published_at)} · {html.escape(view.title)}")
    count = len(preview.next_posts)
    lines.append("\n" + t.ngettext("The next slot would post {count} message; its preview follows.",
                                   "The next slot would post {count} messages; previews follow.",
                                   count).format(count=count))
    await reply(update, "\n".join(lines))
    for post in preview.next_posts:
        await reply(update, post.html)


def skip_target(args: Sequence[str], channel_names: Sequence[str],
                t: Translations = ENGLISH) -> tuple[str, int] | str:
    """(channel, item) from /skip's arguments, or why they do not name one ("": the usage says it)."""
    if len(args) not in (1, 2):
        return ""
    try:
        item_id = id_arg(args[-1], "ITEM")
    except UsageError as exc:
        return str(exc.problem or "")
    if len(args) == 2:
        return args[0], item_id
    if len(channel_names) == 1:
        return channel_names[0], item_id
    return t.gettext("Which channel? There are several: {channels}.").format(
        channels=", ".join(channel_names) or t.gettext("none"))


async def skip(update: Update, context: Context) -> None:
    """/skip [CHANNEL] ITEM: never post that item to the channel."""
    names = await run_db(context, views.channel_names)
    t = await translator(update, context)
    target = skip_target(context.args or [], names, t)
    if isinstance(target, str):
        raise UsageError(target or None)
    name, item_id = target
    try:
        await run_db(context, skip_item, name, item_id, actor=actor_of(update))
    except (NotFoundError, ValueError) as exc:
        await reply(update, html.escape(problem_text(exc, t)))
        return
    await reply(update, t.gettext("Item {item} will not be posted to {channel}.").format(
        item=item_id, channel=f"<b>{html.escape(name)}</b>"))


async def _outcomes(context: Context, post_ids: list[int]) -> dict[int, tuple[str, str]]:
    """The posts' states once none is still queued or in flight (the drain job may hold one), or at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + POSTNOW_WAIT
    while True:
        states = await run_db(context, views.posts_by_id, post_ids)
        if all(state not in (PENDING, SENDING) for state, _ in states.values()) or loop.time() > deadline:
            return states
        await asyncio.sleep(0.1)


async def postnow(update: Update, context: Context) -> None:
    """/postnow CHANNEL [ITEM...]: post the given items (or the next due ones) at once."""
    args = context.args or []
    if not args:
        raise UsageError()
    name, item_ids = args[0], [id_arg(a, "ITEM") for a in args[1:]]
    actor = actor_of(update)
    try:
        paused = await run_db(context, views.check_post_targets, name, item_ids)
    except NotFoundError as exc:
        raise UsageError(exc) from None
    t = await translator(update, context)
    if paused:
        await reply(update, t.gettext("{channel} is paused; /resume {name} first.").format(
            channel=f"<b>{html.escape(name)}</b>", name=html.escape(name)))
        return
    posts = await context.bot_data["publisher"].post_now(name, item_ids or None)
    post_ids = [post.id for post in posts]
    await run_db(context, actions.audit, actor, "postnow", f"channel:{name}",
                     {"items": item_ids, "posts": post_ids}, channel=name)
    if not posts:
        why = (t.ngettext("Nothing posted: item {items} was already posted to (or skipped in) {channel}.",
                          "Nothing posted: items {items} were already posted to (or skipped in) {channel}.",
                          len(item_ids)) if item_ids else t.gettext("Nothing posted: nothing is due for {channel}."))
        await reply(update, html.escape(why.format(items=", ".join(map(str, item_ids)), channel=name)))
        return
    states = await _outcomes(context, post_ids)
    lines = [t.gettext("Posted to {channel}:").format(channel=f"<b>{html.escape(name)}</b>")]
    for post in posts:
        state = _state(states.get(post.id, ("?", name))[0], t)
        lines.append("• " + html.escape(t.gettext("post {post} (items {items}): {state}").format(
            post=post.id, items=", ".join(map(str, post.item_ids)), state=state)))
    await reply(update, "\n".join(lines))


async def comment(update: Update, context: Context) -> None:
    """/comment ITEM TEXT: the editor's commentary, shown by the item's next post and edited into sent ones."""
    args = context.args or []
    if len(args) < 2:
        raise UsageError()
    item_id, text = id_arg(args[0], "ITEM"), " ".join(args[1:])
    try:
        reach = await run_db(context, actions.add_commentary, item_id, text, author=actor_of(update))
    except (NotFoundError, ValueError) as exc:
        raise UsageError(exc) from None
    _ = (await translator(update, context)).gettext
    if not reach.edited and not reach.kept:
        said = _("Commentary saved for item {item}; its next post shows it.").format(item=item_id)
    else:
        said = _("Commentary saved for item {item}.").format(item=item_id)
    if reach.edited:
        said += "\n" + _("Its message in {channels} is edited to show it.").format(channels=", ".join(reach.edited))
    if reach.kept:
        said += "\n" + _("{channels} keep the message as sent (on_change: ignore).").format(
            channels=", ".join(reach.kept))
    await reply(update, html.escape(said))


# ---------------------------------------------------------------------------------------------
# Uncertain and failed posts


def _resolve_markup(post_id: int, t: Translations) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(t.gettext("✅ confirm sent"), callback_data=f"u:confirm:{post_id}"),
        InlineKeyboardButton(t.gettext("🔁 resend"), callback_data=f"u:resend:{post_id}"),
        InlineKeyboardButton(t.gettext("🗑 drop"), callback_data=f"u:drop:{post_id}"),
    ]])


async def uncertain(update: Update, context: Context) -> None:
    """/uncertain: posts that may or may not have been sent, or failed, each with its buttons."""
    if context.args:
        raise UsageError()
    posts, total = await run_db(context, views.problem_posts, limit=UNCERTAIN_SHOWN)
    t = await translator(update, context)
    _ = t.gettext
    if not posts:
        await reply(update, html.escape(_("No uncertain or failed posts.")))
        return
    for post in posts:
        preview = visible_text(post.html)
        preview = preview if len(preview) <= 300 else preview[:300] + "…"
        head = html.escape(_("Post {post}").format(post=post.id))
        details = [html.escape(post.channel), html.escape(_state(post.state, t)),
                   html.escape(_("attempts {count}").format(count=post.attempts))]
        text = (f"<b>{head}</b> · {' · '.join(details)}\n"
                + html.escape(_("items: {items}").format(items=", ".join(map(str, post.item_ids)))) + "\n"
                + html.escape(_("error: {error}").format(error=post.error or "—")) + "\n"
                f"<blockquote>{html.escape(preview)}</blockquote>")
        await reply(update, text, markup=_resolve_markup(post.id, t))
    if total > len(posts):
        more = total - len(posts)
        await reply(update, html.escape(_("…and {count} more: resolve these, then /uncertain again.").format(
            count=more)))


@admin_only
async def resolve(update: Update, context: Context) -> None:
    """A confirm/resend/drop button under an /uncertain post."""
    callback = update.callback_query
    assert callback is not None and callback.data is not None
    _, action, post_text = (callback.data.split(":") + ["", ""])[:3]
    t = await translator(update, context)
    try:
        post_id = parse_id(post_text)
    except BadId:
        post_id = None
    if action not in RESOLVE_ACTIONS or post_id is None:
        await callback.answer(t.gettext("Unknown button."), show_alert=True)
        return
    actor = actor_of(update)
    try:
        await run_db(context, resolve_post, post_id, action=action, actor=actor)
        outcome = t.gettext(RESOLVE_ACTIONS[action]).format(post=post_id, actor=actor)
    except NotFoundError:
        outcome = t.gettext("Post {post} was already resolved.").format(post=post_id)
    message = callback.message
    if isinstance(message, Message) and message.text is not None:
        await callback.edit_message_text(f"{message.text_html}\n\n→ {html.escape(outcome)}",
                                         parse_mode=ParseMode.HTML, reply_markup=None)
    await callback.answer(outcome)


# ---------------------------------------------------------------------------------------------
# Stats and ingest


async def stats(update: Update, context: Context) -> None:
    """/stats: items, posts by state, 429s received and each channel's last post."""
    if context.args:
        raise UsageError()
    totals = await run_db(context, views.delivery_stats)
    _ = (await translator(update, context)).gettext
    lines = [
        "<b>" + html.escape(_("Stats")) + "</b>",
        _("items: {count}").format(count=totals.items),
        _("posts sent: {sent} · pending: {pending} · failed: {failed} · uncertain: {uncertain}").format(
            sent=totals.sent, pending=totals.waiting, failed=totals.failed, uncertain=totals.uncertain),
        _("429s received: {count}").format(count=totals.flood_waits),
        _("last post per channel:"),
    ]
    for summary in totals.channels:
        last = _("never")
        if summary.last_post is not None:
            when = format_time(summary.last_sent_at, summary.timezone)
            url = post_url(summary.last_post.chat_id, summary.last_post.message_id)
            last = link(url, when) if url else html.escape(when)
        lines.append(f"• {html.escape(summary.name)}: {last}")
    await reply(update, "\n".join(lines))


def _ingest_summary(report: IngestReport, t: Translations) -> str:
    _ = t.gettext
    lines = [
        "<b>" + html.escape(_("Ingest done")) + "</b>",
        _("documents: {new} new, {updated} updated, {unchanged} unchanged, {failed} failed").format(
            new=report.documents_new, updated=report.documents_updated, unchanged=report.documents_unchanged,
            failed=report.documents_failed),
        _("items: {new} new, {updated} updated, {unchanged} unchanged, {duplicate} duplicate, {removed} removed").format(
            new=report.items_new, updated=report.items_updated, unchanged=report.items_unchanged,
            duplicate=report.items_duplicate, removed=report.items_removed),
    ]
    for path, reason in report.failures[:5]:
        lines.append("• " + _("failed {path}: {reason}").format(path=html.escape(path), reason=html.escape(reason)))
    if len(report.failures) > 5:
        more = len(report.failures) - 5
        lines.append(t.ngettext("…and {count} more failure (see the log)", "…and {count} more failures (see the log)",
                                more).format(count=more))
    return "\n".join(lines)


async def ingest_command(update: Update, context: Context) -> None:
    """/ingest: read archive.paths into the database now and report what changed."""
    if context.args:
        raise UsageError()
    lock: asyncio.Lock = context.bot_data.setdefault("ingest_lock", asyncio.Lock())
    t = await translator(update, context)
    if lock.locked():
        await reply(update, html.escape(t.gettext("An ingest is already running; its summary follows when it ends.")))
        return
    config = config_of(context)
    async with lock:
        await reply(update, t.gettext("Ingesting {paths} …").format(paths=html.escape(", ".join(config.archive.paths))))
        report = await run_db(context, ingest, config.archive.paths, max_bytes=config.archive.max_document_bytes)
        summary = report.as_dict()
        await run_db(context, actions.audit, actor_of(update), "ingest", "archive",
                         {"documents": summary["documents"], "items": summary["items"]})
    await reply(update, _ingest_summary(report, t))
