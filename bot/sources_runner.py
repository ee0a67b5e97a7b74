"""`digestbot run` keeps its sources in step: a JobQueue job hands due sources to one worker thread.

The job itself returns at once (it never waits for a fetch), so sends and commands never wait
for a source; while a refresh runs, later firings see it busy and leave it alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor

from telegram.ext import Application, ContextTypes

from bot.i18n import Notice, Translations
from digests.clock import utcnow
from digests.config import Config
from digests.sources.refresh import Outcome, Refresher
from digests.sources.registry import has_scheduled, sync_config
from digests.store.db import Database

log = logging.getLogger(__name__)
SOURCES_JOB = "sources"
_RUNNER = "sources_runner"


class SourcesRunner:
    """One refresh at a time in a thread of its own; notices go to the admins from the event loop."""

    def __init__(self, application: Application, refresher: Refresher,
                 notify: Callable[[Notice], Awaitable[None]]) -> None:
        self.application = application
        self.refresher = refresher
        self.notify = notify
        self.loop = asyncio.get_running_loop()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digestbot-sources")
        self.stopping = threading.Event()
        self.future: Future[list[Outcome]] | None = None

    def kick(self) -> None:
        """Start a refresh of what is due, unless one is still running."""
        if self.stopping.is_set() or (self.future is not None and not self.future.done()):
            return
        self.future = self.executor.submit(self.refresher.refresh_due, should_stop=self.stopping.is_set)
        self.future.add_done_callback(lambda done: self.loop.call_soon_threadsafe(self._done, done))

    def _done(self, future: Future[list[Outcome]]) -> None:
        try:
            outcomes = future.result()
        except Exception:  # the database went away mid-refresh: the next firing tries again
            log.exception("refreshing the sources failed")
            return
        for outcome in outcomes:
            if outcome.items_added:
                log.info("source %s: %d new item(s)", outcome.name, outcome.items_added)
            if outcome.switched_off_after and not self.stopping.is_set():
                self.application.create_task(self.notify(switched_off_notice(outcome)))

    def stop(self) -> None:
        """No new refresh; one under way stops after its current source, then its HTTP client closes
        (closed under it, its fetches would be recorded as the sources' failures)."""
        self.stopping.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.future is not None and not self.future.done():
            self.future.add_done_callback(lambda _done: self.refresher.close())
        else:
            self.refresher.close()


async def _refresh_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    runner: SourcesRunner | None = context.application.bot_data.get(_RUNNER)
    if runner is not None:
        runner.kick()


def switched_off_notice(outcome: Outcome) -> Notice:
    """The admins' notice of a source switched off after failing, in each admin's language."""
    failures = outcome.switched_off_after or 0

    def text(t: Translations) -> str:
        said = t.ngettext(
            "Source {name} ({location}) is switched off after {count} failure in a row. The last: {error}\n"
            "Turn it on again with /sources enable {name} (or digestbot sources enable {name}).",
            "Source {name} ({location}) is switched off after {count} failures in a row. The last: {error}\n"
            "Turn it on again with /sources enable {name} (or digestbot sources enable {name}).", failures)
        return said.format(name=outcome.name, location=outcome.location, count=failures, error=outcome.error)

    return text


def start_sources(application: Application, notify: Callable[[Notice], Awaitable[None]]) -> bool:
    """Copy config's sources into the database and, when any has an interval, start the job;
    notify(notice) tells the admins (a source switched off)."""
    config: Config = application.bot_data["config"]
    db: Database = application.bot_data["db"]
    sync_config(db, config.sources, utcnow())
    if not has_scheduled(db):
        return False
    runner = SourcesRunner(application, Refresher(db, config.fetch, proxy=config.proxy.fetch), notify)
    application.bot_data[_RUNNER] = runner
    job_queue = application.job_queue
    assert job_queue is not None
    job_queue.run_repeating(_refresh_job, interval=config.fetch.poll_seconds, first=0.1, name=SOURCES_JOB,
                            job_kwargs={"id": SOURCES_JOB, "replace_existing": True, "coalesce": True,
                                        "max_instances": 1})
    return True


def stop_sources(application: Application) -> None:
    runner: SourcesRunner | None = application.bot_data.pop(_RUNNER, None)
    if runner is not None:
        runner.stop()
