"""The `digestbot` command: a thin shell that turns library errors into clear messages.

This module holds the parser and `main`; the commands live in one module per group and never
import this one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bot import logs
from bot.cli import channels, db, deliveries, ingest, items, publish, service, sources
from bot.cli.context import EXIT_FAILED, EXIT_USAGE, Context
from bot.ids import BadId, parse_id
from digests.errors import DigestError
from digests.states import POST_STATES

log = logging.getLogger("digestbot")
Command = Callable[[Context], int]


def number(what: str) -> Callable[[str], int]:
    """An id or count argument as bot.ids reads it; argparse's usage error (exit 2) otherwise."""

    def parse(text: str) -> int:
        try:
            return parse_id(text, what)
        except BadId as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _jobs(text: str) -> int:
    """--jobs: a number of processes, 1 to 256."""
    count = number("--jobs")(text)
    if not 1 <= count <= 256:
        raise argparse.ArgumentTypeError(f"--jobs must be between 1 and 256, not {count}")
    return count


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config.yaml (default: $DIGESTBOT_CONFIG, ./config.yaml, "
                        "or the built-in defaults)", default=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")
    common.add_argument("--log-format", choices=logs.LOG_FORMATS, default=argparse.SUPPRESS,
                        help="text (default) or json: one JSON object a line, for log collectors")
    parser = argparse.ArgumentParser(
        prog="digestbot", parents=[common],
        description="hardcore-digest: turn an archive of Chinese tech news into a Telegram channel.",
    )
    parser.add_argument("--version", action="version", version=f"digestbot {_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help="what to do")

    def add(name: str, func: Command, **kwargs: Any) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=func.__doc__, description=func.__doc__, **kwargs)
        command.set_defaults(func=func)
        return command

    p = add("ingest", ingest.cmd_ingest)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, .zip or .tar.gz archives, "
                   "http(s):// URLs, git+https:// (or git+ssh://, git+file://) repositories [#branch[:folder]]")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                   help="parse in N worker processes (default: one per core; 1: all in this process)")

    p = add("items", items.cmd_items)
    p.add_argument("--json", action="store_true", help="print the items as JSON")
    p.add_argument("--limit", type=number("N"), default=None, metavar="N", help="at most N items (default: all)")
    p.add_argument("--newest", action="store_true", help="newest first (default: in storage order)")

    p = add("db", db.cmd_db)
    p.add_argument("action", choices=["upgrade", "current", "reindex", "backup", "restore"],
                   help="upgrade: migrate to the newest schema; current: show the revision; "
                        "reindex: rebuild the search index; backup/restore FILE: a copy of a SQLite database")
    service.add_db_arguments(p)

    p = add("comment", items.cmd_comment)
    p.add_argument("item_id", type=number("ITEM_ID"), metavar="ITEM_ID", help="the item's id (digestbot items, search)")
    p.add_argument("text", nargs="+", metavar="TEXT", help="the commentary")
    p.add_argument("--author", default=None, help="who wrote it, for the audit log (default: $USER)")

    p = add("search", items.cmd_search, epilog="-word excludes a word, no -- needed: digestbot search 谷歌 -微软")
    p.add_argument("query", nargs="+", metavar="QUERY",
                   help='words that must all occur, "a phrase", -word to exclude')
    p.add_argument("--limit", type=number("N"), default=10, metavar="N", help="at most N results (default: 10)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")

    p = add("preview", publish.cmd_preview)
    p.add_argument("--channel", metavar="NAME", help="only this channel (default: every channel)")
    p.add_argument("--limit", type=number("N"), metavar="N",
                   help="the next N posts of each channel, whole slots as they will be sent "
                        "(default: the next slot's)")
    p.add_argument("--json", action="store_true", help="print the posts as JSON")
    p.add_argument("--html", metavar="FILE", help="write a page that renders the posts like Telegram")

    p = add("publish", publish.cmd_publish)
    p.add_argument("--once", action="store_true",
                   help="the default and only mode, accepted for old cron lines: one slot now, then exit "
                        "(`digestbot run` keeps the schedule)")
    p.add_argument("--channel", metavar="NAME", help="only this channel (default: every active channel)")
    p.add_argument("--dry-run", action="store_true",
                   help="show the posts here and record them as dry-run; send nothing, consume nothing")

    p = add("run", publish.cmd_run)
    p.add_argument("--dry-run", action="store_true", help="print the posts here instead of sending them")

    p = add("deliveries", deliveries.cmd_deliveries)
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    p.add_argument("--channel", metavar="NAME", help="only this channel's posts")
    p.add_argument("--state", action="append", metavar="STATE", choices=POST_STATES,
                   help=f"only posts in this state (repeat for several): {', '.join(POST_STATES)}")
    p.add_argument("--limit", type=number("N"), metavar="N", help="at most N records, oldest first")

    p = add("uncertain", deliveries.cmd_uncertain)
    p.add_argument("--json", action="store_true", help="print the posts as JSON")
    for action, what in (("confirm", "it did reach the channel: record it as sent"),
                         ("resend", "it did not: send it again"), ("drop", "never send it")):
        p.add_argument(f"--{action}", type=number("POST_ID"), metavar="POST_ID", help=what)

    p = add("stats", deliveries.cmd_stats)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")

    p = add("channels", channels.cmd_channels)
    channels.add_parser(p, [common])

    p = add("demo", publish.cmd_demo)
    p.add_argument("--workdir", metavar="DIR", help="keep the demo database and archive here")

    service.register(add)
    sources.add_parsers(add)
    return parser


def _version() -> str:
    try:
        return version("hardcore-digest")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; for `search`, a -word argparse does not know is a word to exclude, not an option."""
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command == "search" and not [arg for arg in unknown if arg.startswith("--")]:
        args.query = [*args.query, *unknown]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    args.config = getattr(args, "config", None)
    verbose = getattr(args, "verbose", False)
    logs.configure(logging.DEBUG if verbose else logging.WARNING, getattr(args, "log_format", "text"))
    ctx: Context | None = None
    try:
        ctx = Context(args)
        logs.add_secret(ctx.config.token)
        if not verbose:
            logging.getLogger().setLevel(ctx.config.log_level if args.command == "run" else logging.WARNING)
            for noisy in ("apscheduler", "httpx", "httpcore"):  # a line per job run or request
                logging.getLogger(noisy).setLevel(logging.WARNING)
        command: Command = args.func
        return command(ctx)
    except DigestError as exc:
        print(logs.mask(f"digestbot: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(logs.mask(f"digestbot: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so plainly, keep the traceback for -v
        log.debug("unexpected error", exc_info=True)
        print(logs.mask(f"digestbot: internal error: {exc.__class__.__name__}: {exc} (run with -v for details)"),
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        if ctx is not None:
            ctx.close()
