"""`digestbot ingest`: files, folders and archives into the database, with a summary."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from bot.cli import sources
from bot.cli.context import EXIT_FAILED, EXIT_OK, Context
from bot.cli.output import print_ingest_report, print_json


def cmd_ingest(ctx: Context) -> int:
    """Ingest files, folders, .zip/.tar.gz archives, URLs and git repositories (default: archive.paths and sources)."""
    from digests.ingest.pipeline import ingest

    if sources.wants_sources(ctx):
        return sources.ingest_locations(ctx)

    paths = ctx.args.paths or ctx.config.archive.paths
    as_json = ctx.args.json
    if not getattr(ctx.args, "verbose", False):  # the summary lists every failure already
        logging.getLogger("digests.ingest").setLevel(logging.ERROR)
    progress_cb: Callable[[str], None] | None = None
    progress_ctx = None
    if not as_json and sys.stderr.isatty():
        from rich.markup import escape
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress_ctx = Progress(SpinnerColumn(), TextColumn("{task.completed} documents"),
                                TextColumn("[dim]{task.description}"), TimeElapsedColumn(), transient=True)
        progress_ctx.start()
        task = progress_ctx.add_task("", total=None)

        def progress_cb(path: str) -> None:
            name = escape(Path(path.split("!")[-1]).name[-40:])  # the column reads it as markup
            progress_ctx.update(task, advance=1, description=name)

    try:
        report = ingest(ctx.db, paths, max_bytes=ctx.config.archive.max_document_bytes, progress=progress_cb,
                        jobs=sources.ingest_jobs(ctx))
    finally:
        if progress_ctx is not None:
            progress_ctx.stop()
    if as_json:
        print_json(report.as_dict())
    else:
        print_ingest_report(report)
    return EXIT_FAILED if report.documents_failed else EXIT_OK
