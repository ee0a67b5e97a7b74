"""CLI commands for running digestbot as a service: `health`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

# `ctx` is bot.cli.Context; not imported, so this module and bot.cli do not import each other.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def cmd_health(ctx: Any) -> int:
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


def register(add: Callable[..., Any]) -> None:
    p = add("health", cmd_health)
    p.add_argument("--json", action="store_true", help="print the verdict as /healthz does")
    p.add_argument("--no-scheduler", action="store_true",
                   help="do not ask for a running `digestbot run` (cron users of `publish --once`)")
    p.add_argument("--any-host", action="store_true",
                   help="a heartbeat from any machine counts (default: this machine's workers only)")

