"""Prometheus metrics: database counts read at scrape time, plus what only this process knows.

Counts of posts, documents and items come from the database when /metrics is scraped, so every
worker on one database reports the same numbers (aggregate them with max(), not sum()). The
send latency and the seconds held after a 429 are measured here, per process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from digests.states import EDIT_ACTIONS, EDIT_STATES, POST_STATES, WAITING_STATES
from digests.store.db import Database
from digests.store.health import DatabaseUnavailable
from digests.store.metrics import read_metric_counts

log = logging.getLogger(__name__)

# Telegram answers in tens of milliseconds to seconds; a slow proxy or a large photo takes longer.
_SEND_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

SEND_SECONDS = Histogram(
    "digestbot_send_duration_seconds", "Time a send to Telegram took, answer or error, per channel",
    ["channel"], buckets=_SEND_BUCKETS, registry=None,
)
FLOOD_HOLD_SECONDS = Counter(
    "digestbot_flood_hold_seconds", "Seconds this process held every send after Telegram's 429s",
    registry=None,
)


@contextmanager
def time_send(channel: str) -> Iterator[None]:
    """Observe how long the block (one request to Telegram) took, whatever its outcome."""
    started = time.perf_counter()
    try:
        yield
    finally:
        SEND_SECONDS.labels(channel).observe(time.perf_counter() - started)


def flood_held(seconds: float) -> None:
    FLOOD_HOLD_SECONDS.inc(max(0.0, seconds))


class DatabaseCollector:
    """Reads the counts through digests.store.metrics on every scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> Iterable[Metric]:
        return []  # the families depend on the data; nothing to check for duplicates up front

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("digestbot_database_up", "1 when the database answered this scrape")
        try:
            counts = read_metric_counts(self.db)
        except DatabaseUnavailable as exc:  # a scrape must still answer: say the database is down
            log.warning("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        channels = sorted(counts.paused)
        posts = GaugeMetricFamily("digestbot_posts", "Posts per channel in each delivery state",
                                  labels=["channel", "state"])
        sent = CounterMetricFamily("digestbot_posts_sent", "Posts sent to Telegram per channel", labels=["channel"])
        plain = CounterMetricFamily("digestbot_posts_plain_fallback",
                                    "Posts Telegram refused as HTML and took as plain text", labels=["channel"])
        queue = GaugeMetricFamily("digestbot_queue_depth", "Posts waiting or in flight per channel",
                                  labels=["channel"])
        paused = GaugeMetricFamily("digestbot_channel_paused", "1 when the channel is paused", labels=["channel"])
        last = GaugeMetricFamily("digestbot_last_post_timestamp_seconds",
                                 "When the channel's newest sent post was sent (Unix time)", labels=["channel"])
        for name in channels:
            for state in POST_STATES:
                posts.add_metric([name, state], counts.posts.get((name, state), 0))
            sent.add_metric([name], counts.posts.get((name, "sent"), 0))
            plain.add_metric([name], counts.plain_fallbacks.get(name, 0))
            queue.add_metric([name], sum(counts.posts.get((name, state), 0) for state in WAITING_STATES))
            paused.add_metric([name], 1 if counts.paused[name] else 0)
            if name in counts.last_sent_at:
                last.add_metric([name], counts.last_sent_at[name].timestamp())
        floods = CounterMetricFamily("digestbot_flood_waits", "429 answers (flood control) from Telegram, all workers")
        floods.add_metric([], counts.flood_waits)
        documents = GaugeMetricFamily("digestbot_ingest_documents", "Documents stored per format",
                                      labels=["format"])
        failures = GaugeMetricFamily("digestbot_ingest_failures", "Documents whose last ingest failed, per format",
                                     labels=["format"])
        items = GaugeMetricFamily("digestbot_ingest_items", "Items stored per format", labels=["format"])
        for fmt in sorted({*counts.documents, *counts.document_failures, *counts.items}):
            documents.add_metric([fmt], counts.documents.get(fmt, 0))
            failures.add_metric([fmt], counts.document_failures.get(fmt, 0))
            items.add_metric([fmt], counts.items.get(fmt, 0))
        edits = GaugeMetricFamily("digestbot_message_edits",
                                  "Edits and deletions of sent messages per channel, action and state",
                                  labels=["channel", "action", "state"])
        for name in channels:
            for action in EDIT_ACTIONS:
                for state in EDIT_STATES:
                    edits.add_metric([name, action, state], counts.edits.get((name, action, state), 0))
        return [up, posts, sent, plain, queue, paused, last, floods, documents, failures, items, edits]


def make_registry(db: Database) -> CollectorRegistry:
    """What /metrics serves: the database counts, this process's send metrics, its CPU and memory."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(db))
    registry.register(SEND_SECONDS)
    registry.register(FLOOD_HOLD_SECONDS)
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format (blocking: it reads the database)."""
    return generate_latest(registry)
