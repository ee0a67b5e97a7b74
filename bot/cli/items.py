"""`digestbot items`, `search` and `comment`: the stored items, read and annotated."""

from __future__ import annotations

import os

from bot.cli.context import EXIT_OK, Context
from bot.cli.output import console, print_json


def cmd_items(ctx: Context) -> int:
    """List stored items (--json for scripts)."""
    from digests.store.items import item_views, list_items

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
    console().print(table)
    return EXIT_OK


def cmd_comment(ctx: Context) -> int:
    """Add an editor's commentary to an item; the next post of it shows this."""
    from digests.store.items import add_commentary

    author = ctx.args.author or os.environ.get("USER") or "editor"
    with ctx.db.session() as session:
        add_commentary(session, ctx.args.item_id, " ".join(ctx.args.text), author=f"cli:{author}")
    print(f"commentary added to item {ctx.args.item_id}")
    return EXIT_OK


def cmd_search(ctx: Context) -> int:
    """Search the archive (Chinese words of one or two characters work)."""
    from digests import search
    from digests.store.items import item_views

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
