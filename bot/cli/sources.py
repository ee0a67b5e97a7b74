"""`digestbot ingest URL...` and `digestbot sources` (health, OPML, on/off, refresh)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.cli.context import EXIT_FAILED, EXIT_OK, Context
from bot.cli.output import print_ingest_report, print_json
from digests.clock import utcnow
from digests.errors import DigestError
from digests.source_config import interval_seconds
from digests.source_locations import is_remote
from digests.sources.refresh import FAILED, PARTIAL, Outcome, Refresher
from digests.sources.registry import (
    SourceHealth,
    export_opml,
    forget_source,
    import_opml,
    records,
    refresh_soon,
    source_for,
    source_health,
    switch_source,
    sync_config,
)
from digests.store.sources import SourceRecord

ACTIONS = ("list", "import", "export", "enable", "disable", "refresh", "remove")


def wants_sources(ctx: Context) -> bool:
    """`digestbot ingest` goes through sources when it is given a URL, or no argument and config has sources."""
    given = ctx.args.paths
    return any(is_remote(arg) for arg in given) if given else bool(ctx.config.sources)


def _refresher(ctx: Context) -> Refresher:
    return Refresher(ctx.db, ctx.config.fetch, proxy=ctx.config.proxy.fetch)


def _refresh(ctx: Context, targets: Sequence[SourceRecord]) -> list[Outcome]:
    refresher = _refresher(ctx)
    try:
        return refresher.refresh(targets)
    finally:
        refresher.close()


def outcome_line(outcome: Outcome) -> str:
    """One source's refresh in words: what it was, what happened, what it added."""
    parts = [outcome.status]
    if outcome.http_status:
        parts.append(f"HTTP {outcome.http_status}" + (" not modified" if outcome.http_status == 304 else ""))
    if outcome.commit:
        parts.append(f"commit {outcome.commit[:10]}")
    report = outcome.report
    if report is not None:
        documents = report.documents_new + report.documents_updated
        parts.append(f"{documents} document(s) read ({report.documents_new} new, {report.documents_updated} "
                     f"updated, {report.documents_unchanged} unchanged)")
        parts.append(f"{report.items_new} new item(s)")
    removed = outcome.removed + (report.items_removed if report is not None else 0)
    if removed:
        parts.append(f"{removed} item(s) removed")
    line = f"{outcome.name}: " + ", ".join(parts)
    if outcome.name != outcome.location:
        line += f" [{outcome.location}]"
    if outcome.error:
        line += f"\n    {outcome.error}"
    return line


def ingest_jobs(ctx: Context) -> int:
    """Worker processes that parse an ingest's files: --jobs, or one per core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return getattr(ctx.args, "jobs", None) or cores or 1


def ingest_locations(ctx: Context) -> int:
    """Ingest local paths as before, and URLs (or every source that is on) through their sources."""
    from digests.ingest.pipeline import ingest

    if not getattr(ctx.args, "verbose", False):  # the summary names every failure already
        for name in ("digests.ingest", "digests.sources"):
            logging.getLogger(name).setLevel(logging.ERROR)
    now = utcnow()
    sync_config(ctx.db, ctx.config.sources, now)
    given = ctx.args.paths
    if given:
        paths = [arg for arg in given if not is_remote(arg)]
        targets = [source_for(ctx.db, arg, now) for arg in given if is_remote(arg)]
    else:
        paths, targets = list(ctx.config.archive.paths), records(ctx.db)
    report = ingest(ctx.db, paths, max_bytes=ctx.config.archive.max_document_bytes,
                    jobs=ingest_jobs(ctx)) if paths else None
    outcomes = _refresh(ctx, targets)
    if ctx.args.json:
        print_json({**(report.as_dict() if report is not None else {}),
                     "sources": [outcome.as_dict() for outcome in outcomes]})
    else:
        if report is not None:
            print_ingest_report(report)
        for outcome in outcomes:
            print(outcome_line(outcome))
    for outcome in outcomes:
        if outcome.notice:
            print(f"admin notice: {outcome.notice}", file=sys.stderr)
    failed = (report is not None and report.documents_failed) or any(o.status in (FAILED, PARTIAL) for o in outcomes)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_sources(ctx: Context) -> int:
    """Sources' health; import/export OPML; enable, disable, refresh or remove a source."""
    action, names = ctx.args.action, list(ctx.args.names)
    now = utcnow()
    sync_config(ctx.db, ctx.config.sources, now)
    if action == "list":
        return _list(ctx)
    if action == "import":
        if len(names) != 1:
            raise DigestError("usage: digestbot sources import FILE.opml [--interval 'every 1h']")
        try:
            data = Path(names[0]).read_bytes()
        except OSError as exc:
            raise DigestError(f"{names[0]}: cannot read: {exc.strerror}") from None
        added, skipped = import_opml(ctx.db, data, interval_seconds=interval_seconds(ctx.args.interval),
                                     actor="cli", now=now)
        if ctx.args.json:
            print_json({"added": added, "skipped": [{"url": u, "reason": r} for u, r in skipped]})
        else:
            print(f"{len(added)} feed(s) added, fetched {ctx.args.interval}: {', '.join(added) or '-'}")
            for url, reason in skipped:
                print(f"  skipped {url}: {reason}")
        return EXIT_OK
    if action == "export":
        text = export_opml(ctx.db, now=now)
        if names:
            Path(names[0]).write_text(text, encoding="utf-8")
            print(f"wrote {names[0]}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    if action == "refresh":
        outcomes = _refresh(ctx, records(ctx.db, names))
        if ctx.args.json:
            print_json([outcome.as_dict() for outcome in outcomes])
        else:
            for outcome in outcomes:
                print(outcome_line(outcome))
        return EXIT_FAILED if any(o.status in (FAILED, PARTIAL) for o in outcomes) else EXIT_OK
    if not names:
        raise DigestError(f"usage: digestbot sources {action} NAME...")
    for name in names:
        if action == "remove":
            forget_source(ctx.db, name, actor="cli", now=now)
            print(f"{name}: no longer followed (its items stay in the archive)")
        else:
            switch_source(ctx.db, name, on=action == "enable", actor="cli", now=now)
            if action == "enable":
                refresh_soon(ctx.db, name, actor="cli", now=now)
            print(f"{name}: {'on again, fetched at the next round' if action == 'enable' else 'switched off'}")
    return EXIT_OK


def _list(ctx: Context) -> int:
    health = source_health(ctx.db)
    if ctx.args.json:
        print_json([h.as_dict() for h in health])
        return EXIT_OK
    if not health:
        print("no sources: add them under sources: in config.yaml, or digestbot sources import FILE.opml")
        return EXIT_OK
    for h in health:
        print(health_text(h))
    return EXIT_OK


def health_text(h: SourceHealth) -> str:
    """A source's health in three lines of plain text (a table is unreadable with URLs for names)."""
    where = f" [{h.location}]" if h.location != h.name else ""
    status = f" HTTP {h.http_status}" if h.http_status else ""
    commit = f" · commit {h.git_commit[:10]}" if h.git_commit else ""
    lines = [f"{h.name} ({h.kind}, {h.origin}): {h.state}{status}{where}",
             f"    last fetch {_short(h.last_fetch)} · last change {_short(h.last_change)} · next fetch "
             f"{_short(h.next_fetch)} · items added {h.items_added} ({h.items_total} in all) · failures in a row "
             f"{h.consecutive_failures}{commit}"]
    if h.error:
        lines.append(f"    {h.error}")
    return "\n".join(lines)


def _short(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def add_parsers(add: Callable[..., Any]) -> None:
    """The `sources` command, added with bot.cli's add(name, func)."""
    p = add("sources", cmd_sources)
    p.add_argument("action", nargs="?", default="list", choices=ACTIONS,
                   help="list (default) | import FILE.opml | export [FILE] | enable NAME | disable NAME | "
                        "refresh [NAME...] | remove NAME")
    p.add_argument("names", nargs="*", metavar="ARG", help="source names, or the OPML file")
    p.add_argument("--json", action="store_true", help="print the sources as JSON")
    p.add_argument("--interval", default="every 1h", metavar="EVERY",
                   help="import: how often the imported feeds are fetched (default: 'every 1h')")
