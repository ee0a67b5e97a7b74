"""`digestbot channels`: each channel's state, next slot, queue and last post; pause, resume, retire; its log.

The listing shows the database, which is what runs; `publish` and `run` apply config.yaml to it.
Every change is audited like the bot's admin commands, with the operator as `cli:$USER`.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bot.cli.context import EXIT_OK, Context
from bot.cli.output import print_json
from digests import actions, channel_views
from digests.clock import utcnow
from digests.formatting.times import format_time


def add_parser(parser: argparse.ArgumentParser, parents: list[argparse.ArgumentParser]) -> None:
    """The `channels` sub-commands, on the parser of `digestbot channels` (``parents``: the options every command takes)."""
    parser.add_argument("--json", action="store_true", help="print the listing (or the log) as JSON")
    actions_parser = parser.add_subparsers(dest="action", metavar="ACTION",
                                           help="what to do with a channel; none: list them all")
    pause = actions_parser.add_parser("pause", parents=parents, help="stop posting to a channel until `channels resume`",
                                      description="Stop posting to a channel until `channels resume` (audited).")
    pause.add_argument("name", metavar="NAME", help="the channel's name in config.yaml")
    pause.add_argument("--reason", metavar="TEXT", help="why, for the listing and the audit log")
    resume = actions_parser.add_parser(
        "resume", parents=parents, help="post to a paused (also by a 403) or retired-by-hand channel again",
        description="Post to a paused channel again, also one Telegram's 403 paused, or one retired by hand "
                    "(audited). Its planned posts go out at the next publish.")
    resume.add_argument("name", metavar="NAME", help="the channel's name")
    retire = actions_parser.add_parser(
        "retire", parents=parents, help="never post to a channel again, keeping its history",
        description="Never post to a channel again; its history stays and `channels resume` brings it back "
                    "where it stopped (audited).")
    retire.add_argument("name", metavar="NAME", help="the channel's name")
    log = actions_parser.add_parser("log", parents=parents, help="a channel's audit log, under every name it had",
                                    description="A channel's audit log, under every name it had.")
    log.add_argument("name", metavar="NAME", help="the channel's name (its current one, or the last it had)")
    log.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the log as JSON")


def _actor() -> str:
    return f"cli:{os.environ.get('USER') or 'operator'}"


def cmd_channels(ctx: Context) -> int:
    """The channels: name, chat, state (active, paused, retired) and why, next slot, queue, last post."""
    action = ctx.args.action
    if action == "pause":
        actor = _actor()
        actions.set_paused(ctx.db, ctx.args.name, True, actor=actor, reason=ctx.args.reason or f"paused by {actor}")
        print(f"{ctx.args.name}: paused; nothing is posted until `digestbot channels resume {ctx.args.name}`")
    elif action == "resume":
        undone = actions.resume_channel(ctx.db, ctx.args.name, actor=_actor(),
                                        in_config=ctx.config.channel(ctx.args.name) is not None)
        if undone:
            print(f"{ctx.args.name}: posting again (was {', '.join(undone)}); planned posts go out at the next "
                  "publish")
        else:
            print(f"{ctx.args.name}: already active")
    elif action == "retire":
        if actions.retire_channel(ctx.db, ctx.args.name, actor=_actor()):
            print(f"{ctx.args.name}: retired; it posts nothing until `digestbot channels resume {ctx.args.name}`")
        else:
            print(f"{ctx.args.name}: already retired")
    elif action == "log":
        return _print_log(ctx)
    else:
        return _print_listing(ctx)
    return EXIT_OK


def _print_listing(ctx: Context) -> int:
    statuses = channel_views.channel_statuses(ctx.db, now=utcnow())
    if ctx.args.json:
        print_json([status.as_json() for status in statuses])
        return EXIT_OK
    if not statuses:
        print("no channels yet: add them under channels: in config.yaml, then publish or run")
        return EXIT_OK
    for status in statuses:
        queue = f"queue {status.queue}" + (f" (+{status.needs_word} uncertain/failed)" if status.needs_word else "")
        last = format_time(status.last_post_at, status.timezone, empty="never")
        if status.last_message_id is not None:
            last += f" (message {status.last_message_id})"
        print(f"{status.name:<16} {status.chat_id:<16} {status.state:<8} "
              f"next {format_time(status.next_slot, status.timezone):<21} {queue}  last post {last}")
        if status.reason is not None:
            since = f" since {format_time(status.since, status.timezone)}" if status.since is not None else ""
            print(f"{'':<16} {status.state}{since}: {status.reason}")
    return EXIT_OK


def _print_log(ctx: Context) -> int:
    timezone, entries = channel_views.channel_log(ctx.db, ctx.args.name)
    if getattr(ctx.args, "json", False):
        rows: list[dict[str, Any]] = [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                                       "target": e.target, "detail": e.detail} for e in entries]
        print_json(rows)
        return EXIT_OK
    if not entries:
        print(f"{ctx.args.name}: nothing in the audit log yet")
    for entry in entries:
        print(f"{format_time(entry.at, timezone)}  {entry.actor:<16} {entry.action:<10} {entry.target}  "
              f"{entry.detail}")
    return EXIT_OK
