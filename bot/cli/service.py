"""`digestbot health`, `db backup FILE` and `db restore FILE`: running digestbot as a service."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.cli.context import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Context


def cmd_health(ctx: Context) -> int:
    """Exit 0 when healthy, 1 with the reasons otherwise (for Docker's HEALTHCHECK and cron)."""
    from bot.health import check_health, this_host
    from digests.store.db import Database

    db = Database(ctx.config.database.url)  # not migrated: a health check never writes
    try:
        verdict = check_health(db, ctx.config, workers=None if ctx.args.any_host else this_host(),
                               require_scheduler=not ctx.args.no_scheduler)
    finally:
        db.dispose()
    if ctx.args.json:
        print(json.dumps(verdict.as_json(), ensure_ascii=False, indent=2, default=str))
    else:
        print(verdict.summary(), file=sys.stdout if verdict.ok else sys.stderr)
    return EXIT_OK if verdict.ok else EXIT_FAILED


def cmd_db_file(ctx: Context) -> int:
    """`db backup FILE` and `db restore FILE`: SQLite through its backup API, PostgreSQL by pg_dump."""
    from digests.clock import utcnow
    from digests.store import backup
    from digests.store.revisions import head_revision

    action, file = ctx.args.action, ctx.args.file
    if not file:
        print(f"digestbot db {action}: give the FILE to {'write' if action == 'backup' else 'read'}",
              file=sys.stderr)
        return EXIT_USAGE
    url = ctx.config.database.url
    if backup.sqlite_path(url) is None:
        if action == "backup":
            print("PostgreSQL is backed up with its own tool, pg_dump (consistent while the bot runs); "
                  "the password comes from PGPASSWORD or ~/.pgpass:", file=sys.stderr)
            print(backup.pg_dump_command(url, file))
        else:
            print("Stop every digestbot worker, then restore with pg_restore (it drops and recreates the "
                  "tables of the dump):", file=sys.stderr)
            print(backup.pg_restore_command(url, file))
        return EXIT_FAILED
    if action == "backup":
        written = backup.backup_sqlite(url, Path(file), force=ctx.args.force)
        print(f"backup written to {written.path}: {written.describe()}")
        return EXIT_OK
    beats = timedelta(seconds=3 * ctx.config.server.heartbeat_seconds)
    restored = backup.restore_sqlite(Path(file), url, now=utcnow(), running_within=beats, force=ctx.args.force)
    print(f"restored {file} into {restored.path}: {restored.describe()}")
    if restored.revision != head_revision():
        print("the next start (or `digestbot db upgrade`) migrates it to this version's schema")
    return EXIT_OK


def register(add: Callable[..., Any]) -> None:
    p = add("health", cmd_health)
    p.add_argument("--json", action="store_true", help="print the verdict as /healthz does")
    p.add_argument("--no-scheduler", action="store_true",
                   help="do not ask for a running `digestbot run` (cron users of `publish --once`)")
    p.add_argument("--any-host", action="store_true",
                   help="a heartbeat from any machine counts (default: this machine's workers only)")


def add_db_arguments(parser: Any) -> None:
    """The FILE and --force of `db backup` / `db restore` on the existing `db` sub-command."""
    parser.add_argument("file", nargs="?", metavar="FILE", help="backup/restore: the backup file")
    parser.add_argument("--force", action="store_true", help="backup/restore: replace an existing file")
