"""Output the commands share: JSON for scripts, rich tables for people, the ingest summary."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digests.ingest.pipeline import IngestReport


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def console() -> Any:  # rich is imported only by commands that draw
    from rich.console import Console

    return Console()


def print_ingest_report(report: IngestReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    for path, reason in report.failures:  # names and reasons come from the archive: never markup
        out.print(f"[red]failed[/red] {escape(path)}: {escape(reason)}", highlight=False, soft_wrap=True)
    table = Table(title="ingest summary")
    for column in ("", "new", "unchanged", "updated", "failed", "duplicate", "removed"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("documents", str(report.documents_new), str(report.documents_unchanged),
                  str(report.documents_updated), str(report.documents_failed), "", "")
    table.add_row("items", str(report.items_new), str(report.items_unchanged), str(report.items_updated), "",
                  str(report.items_duplicate), str(report.items_removed))
    out.print(table)
    if report.documents_empty:
        out.print(f"{report.documents_empty} document(s) held no news items (essays, notes): not an error.")
        for path in report.empty:
            out.print(f"  no items: {path}", highlight=False, soft_wrap=True, markup=False)
