"""`digestbot db`: migrations and the search index."""

from __future__ import annotations

from bot.cli.context import EXIT_OK, Context
from bot.cli.service import cmd_db_file


def cmd_db(ctx: Context) -> int:
    """Database maintenance: upgrade (migrate), current (revision), reindex (search), backup/restore FILE."""
    from digests.store.db import Database

    if ctx.args.action in ("backup", "restore"):
        return cmd_db_file(ctx)

    db = Database(ctx.config.database.url)
    try:
        if ctx.args.action == "upgrade":
            db.upgrade()
            print(f"database {db.safe_url} is at revision {db.current_revision()}")
        elif ctx.args.action == "current":
            print(f"{db.safe_url}: revision {db.current_revision() or '(empty)'}, newest {db.head_revision()}")
        elif ctx.args.action == "reindex":
            from digests.actions import rebuild_search_index

            db.ensure_schema()
            count = rebuild_search_index(db)
            print(f"search index rebuilt: {count} items")
    finally:
        db.dispose()
    return EXIT_OK
