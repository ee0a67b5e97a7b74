"""`digestbot items`, `search` and `comment`: the stored items, read and annotated."""

from __future__ import annotations

import os

from bot.cli.context import EXIT_OK, Context
from bot.cli.output import console, print_json
from digests import actions, views
from digests.formatting.times import format_day


def cmd_items(ctx: Context) -> int:
    """List stored items (--json for scripts)."""
    items = views.stored_items(ctx.db, limit=ctx.args.limit, newest_first=ctx.args.newest)
    if ctx.args.json:
        print_json([view.as_json() for view in items])
        return EXIT_OK
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for column in ("id", "date", "source", "title"):
        table.add_column(column)
    for view in items:
        table.add_row(str(view.id), format_day(view.published_at, empty=""), escape(view.source[:20]),
                      escape(view.title[:70]))  # cells are markup
    console().print(table)
    return EXIT_OK


def cmd_comment(ctx: Context) -> int:
    """Add an editor's commentary to an item; its next post shows it, its sent messages are edited."""
    author = ctx.args.author or os.environ.get("USER") or "editor"
    reach = actions.add_commentary(ctx.db, ctx.args.item_id, " ".join(ctx.args.text), author=f"cli:{author}")
    print(f"commentary added to item {ctx.args.item_id}")
    if reach.edited:
        print(f"the next `run` or `publish` edits it into the sent message in {', '.join(reach.edited)}")
    if reach.kept:
        print(f"kept as sent in {', '.join(reach.kept)} (on_change: ignore)")
    return EXIT_OK


def cmd_search(ctx: Context) -> int:
    """Search the archive (Chinese words of one or two characters work)."""
    query = " ".join(ctx.args.query)
    found = views.search_listing(ctx.db, query, limit=ctx.args.limit).views
    if ctx.args.json:
        print_json([view.as_json() for view in found])
        return EXIT_OK
    if not found:
        print(f"nothing found for {query!r}")
        return EXIT_OK
    for view in found:
        print(f"{view.id:>6}  {format_day(view.published_at)}  {view.title}\n        {view.url}")
    return EXIT_OK
