"""The `digestbot` command: a thin shell that turns library errors into clear messages.

This module holds the parser and `main`; the commands live in one module per group and never
import this one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bot.cli import db, deliveries, ingest, items, publish, sources
from bot.cli.context import EXIT_FAILED, EXIT_USAGE, Context
from digests.errors import DigestError

log = logging.getLogger("digestbot")
Command = Callable[[Context], int]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config.yaml (default: $DIGESTBOT_CONFIG, ./config.yaml, "
                        "or the built-in defaults)", default=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")
    parser = argparse.ArgumentParser(
        prog="digestbot", parents=[common],
        description="hardcore-digest: turn an archive of Chinese tech news into a Telegram channel.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, **kwargs: Any) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=func.__doc__, description=func.__doc__, **kwargs)
        command.set_defaults(func=func)
        return command

    p = add("ingest", ingest.cmd_ingest)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, .zip or .tar.gz archives, "
                   "http(s):// URLs, git+https:// (or git+ssh://, git+file://) repositories [#branch[:folder]]")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    p = add("items", items.cmd_items)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=None, metavar="N")
    p.add_argument("--newest", action="store_true", help="newest first (default: in storage order)")

    p = add("db", db.cmd_db)
    p.add_argument("action", choices=["upgrade", "current", "reindex"])

    p = add("comment", items.cmd_comment)
    p.add_argument("item_id", type=int, metavar="ITEM_ID")
    p.add_argument("text", nargs="+", metavar="TEXT")
    p.add_argument("--author", default=None)

    p = add("search", items.cmd_search)
    p.add_argument("query", nargs="+", metavar="QUERY")
    p.add_argument("--limit", type=int, default=10, metavar="N")
    p.add_argument("--json", action="store_true")

    p = add("preview", publish.cmd_preview)
    p.add_argument("--channel", metavar="NAME")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", metavar="FILE", help="write a page that renders the posts like Telegram")

    p = add("publish", publish.cmd_publish)
    p.add_argument("--once", action="store_true", help="run one slot now and exit")
    p.add_argument("--channel", metavar="NAME")
    p.add_argument("--dry-run", action="store_true")

    p = add("run", publish.cmd_run)
    p.add_argument("--dry-run", action="store_true")

    p = add("deliveries", deliveries.cmd_deliveries)
    p.add_argument("--json", action="store_true")
    p.add_argument("--channel", metavar="NAME")
    p.add_argument("--state", action="append", metavar="STATE")
    p.add_argument("--limit", type=int, metavar="N")

    p = add("uncertain", deliveries.cmd_uncertain)
    p.add_argument("--json", action="store_true")
    for action in ("confirm", "resend", "drop"):
        p.add_argument(f"--{action}", type=int, metavar="POST_ID")

    p = add("stats", deliveries.cmd_stats)
    p.add_argument("--json", action="store_true")

    p = add("demo", publish.cmd_demo)
    p.add_argument("--workdir", metavar="DIR", help="keep the demo database and archive here")

    sources.add_parsers(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.config = getattr(args, "config", None)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx: Context | None = None
    try:
        ctx = Context(args)
        if not verbose:
            logging.getLogger().setLevel(ctx.config.log_level if args.command == "run" else logging.WARNING)
            for noisy in ("apscheduler", "httpx", "httpcore"):  # a line per job run or request
                logging.getLogger(noisy).setLevel(logging.WARNING)
        command: Command = args.func
        return command(ctx)
    except DigestError as exc:
        print(f"digestbot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"digestbot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so plainly, keep the traceback for -v
        log.debug("unexpected error", exc_info=True)
        print(f"digestbot: internal error: {exc.__class__.__name__}: {exc} (run with -v for details)",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        if ctx is not None:
            ctx.close()
