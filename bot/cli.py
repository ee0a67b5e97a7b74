"""The `digestbot` command: a thin shell that turns library errors into clear messages."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot import cli_sources
from digests.config import Config, load_config
from digests.errors import DigestError
from digests.store.db import Database, open_database

log = logging.getLogger("digestbot")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CONFIG_ENV = "DIGESTBOT_CONFIG"


class Context:
    """What every command needs: the validated config and, lazily, the database."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config_path = _config_path(args.config)
        self.config: Config = load_config(self.config_path)
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_database(self.config.database.url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def _config_path(given: str | None) -> Path | None:
    """--config, else $DIGESTBOT_CONFIG, else ./config.yaml when present, else the defaults."""
    if given:
        return Path(given)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    local = Path("config.yaml")
    return local if local.is_file() else None


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _console():  # rich is imported only by commands that draw
    from rich.console import Console

    return Console()


# ---------------------------------------------------------------------------------------------
# ingest, items, db


def cmd_ingest(ctx: Context) -> int:
    """Ingest files, folders, .zip/.tar.gz archives, URLs and git repositories (default: archive.paths and sources)."""
    from digests.ingest import ingest

    if cli_sources.wants_sources(ctx):
        return cli_sources.ingest_locations(ctx, _print_ingest_report)

    paths = ctx.args.paths or ctx.config.archive.paths
    as_json = ctx.args.json
    if not getattr(ctx.args, "verbose", False):  # the summary lists every failure already
        logging.getLogger("digests.ingest").setLevel(logging.ERROR)
    progress_cb: Callable[[str], None] | None = None
    progress_ctx = None
    if not as_json and sys.stderr.isatty():
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress_ctx = Progress(SpinnerColumn(), TextColumn("{task.completed} documents"),
                                TextColumn("[dim]{task.description}"), TimeElapsedColumn(), transient=True)
        progress_ctx.start()
        task = progress_ctx.add_task("", total=None)

        def progress_cb(path: str) -> None:
            progress_ctx.update(task, advance=1, description=Path(path.split("!")[-1]).name[-40:])

    try:
        report = ingest(ctx.db, paths, max_bytes=ctx.config.archive.max_document_bytes, progress=progress_cb)
    finally:
        if progress_ctx is not None:
            progress_ctx.stop()
    if as_json:
        print_json(report.as_dict())
    else:
        _print_ingest_report(report)
    return EXIT_FAILED if report.documents_failed else EXIT_OK


def _print_ingest_report(report: Any) -> None:
    from rich.table import Table

    console = _console()
    for path, reason in report.failures:
        console.print(f"[red]failed[/red] {path}: {reason}", highlight=False, soft_wrap=True)
    table = Table(title="ingest summary")
    for column in ("", "new", "unchanged", "updated", "failed", "duplicate", "removed"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("documents", str(report.documents_new), str(report.documents_unchanged),
                  str(report.documents_updated), str(report.documents_failed), "", "")
    table.add_row("items", str(report.items_new), str(report.items_unchanged), str(report.items_updated), "",
                  str(report.items_duplicate), str(report.items_removed))
    console.print(table)
    if report.documents_empty:
        console.print(f"{report.documents_empty} document(s) held no news items (essays, notes): not an error.")


def cmd_items(ctx: Context) -> int:
    """List stored items (--json for scripts)."""
    from digests.queries import item_views, list_items

    with ctx.db.session() as session:
        views = item_views(session, list_items(session, limit=ctx.args.limit, newest_first=ctx.args.newest))
    if ctx.args.json:
        print_json([view.as_json() for view in views])
        return EXIT_OK
    from rich.table import Table

    table = Table()
    for column in ("id", "date", "source", "title"):
        table.add_column(column)
    for view in views:
        day = view.published_at.date().isoformat() if view.published_at else ""
        table.add_row(str(view.id), day, view.source[:20], view.title[:70])
    _console().print(table)
    return EXIT_OK


def cmd_db(ctx: Context) -> int:
    """Database maintenance: upgrade (migrate), current (revision), reindex (search)."""
    from digests.store.db import Database

    db = Database(ctx.config.database.url)
    try:
        if ctx.args.action == "upgrade":
            db.upgrade()
            print(f"database {db.safe_url} is at revision {db.current_revision()}")
        elif ctx.args.action == "current":
            print(f"{db.safe_url}: revision {db.current_revision() or '(empty)'}, newest {db.head_revision()}")
        elif ctx.args.action == "reindex":
            from digests import search

            db.ensure_schema()
            with db.session() as session:
                count = search.rebuild_index(session)
            print(f"search index rebuilt: {count} items")
    finally:
        db.dispose()
    return EXIT_OK


def cmd_comment(ctx: Context) -> int:
    """Add an editor's commentary to an item; the next post of it shows this."""
    from digests.queries import add_commentary

    author = ctx.args.author or os.environ.get("USER") or "editor"
    with ctx.db.session() as session:
        add_commentary(session, ctx.args.item_id, " ".join(ctx.args.text), author=f"cli:{author}")
    print(f"commentary added to item {ctx.args.item_id}")
    return EXIT_OK


def cmd_search(ctx: Context) -> int:
    """Search the archive (Chinese words of one or two characters work)."""
    from digests import search
    from digests.queries import item_views

    query = " ".join(ctx.args.query)
    with ctx.db.session() as session:
        page = search.search_items(session, query, limit=ctx.args.limit)
        views = item_views(session, page.results)
    if ctx.args.json:
        print_json([view.as_json() for view in views])
        return EXIT_OK
    if not views:
        print(f"nothing found for {query!r}")
        return EXIT_OK
    for view in views:
        day = view.published_at.date().isoformat() if view.published_at else "----------"
        print(f"{view.id:>6}  {day}  {view.title}\n        {view.url}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# the parser


COMMANDS: dict[str, Callable[[Context], int]] = {}


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

    def add(name: str, func: Callable[[Context], int], **kwargs: Any) -> argparse.ArgumentParser:
        COMMANDS[name] = func
        return sub.add_parser(name, parents=[common], help=func.__doc__, description=func.__doc__, **kwargs)

    p = add("ingest", cmd_ingest)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, .zip or .tar.gz archives, "
                   "http(s):// URLs, git+https:// (or git+ssh://, git+file://) repositories [#branch[:folder]]")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    p = add("items", cmd_items)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=None, metavar="N")
    p.add_argument("--newest", action="store_true", help="newest first (default: in storage order)")

    p = add("db", cmd_db)
    p.add_argument("action", choices=["upgrade", "current", "reindex"])

    p = add("comment", cmd_comment)
    p.add_argument("item_id", type=int, metavar="ITEM_ID")
    p.add_argument("text", nargs="+", metavar="TEXT")
    p.add_argument("--author", default=None)

    p = add("search", cmd_search)
    p.add_argument("query", nargs="+", metavar="QUERY")
    p.add_argument("--limit", type=int, default=10, metavar="N")
    p.add_argument("--json", action="store_true")

    from bot import commands_publish

    commands_publish.register(add)
    cli_sources.add_parsers(add)
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
        return COMMANDS[args.command](ctx)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
