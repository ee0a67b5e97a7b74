"""/metrics: a Prometheus scrape of a running bot whose counters move when it publishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from digests.ingest.pipeline import ingest
from digests.store import open_database
from digests.store.db import Database
from tests import fakebotapi
from tests.fakebotapi import FakeBotApi
from tests.publishing_helpers import RAISED_LIMITS, make_config, write_archive
from tests.service_helpers import FAST_SERVER, eventually, serving

fake_bot_api = fakebotapi.fake_bot_api
MAIN, OTHER = -1001000000201, -1001000000202


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(f"sqlite:///{tmp_path / 'digest.db'}")
    yield database
    database.dispose()


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_scrape_after_a_publish_counts_what_was_sent(db: Database, fake_bot_api: FakeBotApi,
                                                             tmp_path: Path) -> None:
    fake_bot_api.add_channel(MAIN)
    fake_bot_api.add_channel(OTHER)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "broken.md").write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    report = ingest(db, [write_archive(tmp_path / "archive")])
    assert (report.items_new, report.documents_failed) == (7, 1)
    channels = [{"name": "main", "chat_id": MAIN, "schedule": ["0 9 * * *"], "per_slot": 3},
                {"name": "other", "chat_id": OTHER, "schedule": ["0 9 * * *"], "per_slot": 1}]
    config = make_config(db.url, base_url=fake_bot_api.base_url, token=fake_bot_api.token, channels=channels,
                         server=FAST_SERVER, limits=RAISED_LIMITS)
    async with serving(config, db) as served:
        before = await served.metrics()
        assert value(before, "digestbot_database_up") == 1
        assert value(before, "digestbot_posts_sent_total", channel="main") == 0
        assert value(before, "digestbot_queue_depth", channel="main") == 0
        assert ("digestbot_last_post_timestamp_seconds", (("channel", "main"),)) not in before
        # Ingest, per format: three linux.cn documents with seven items, one document that failed.
        assert value(before, "digestbot_ingest_documents", format="linuxcn") == 3
        assert value(before, "digestbot_ingest_items", format="linuxcn") == 7
        assert value(before, "digestbot_ingest_failures", format="unknown") == 1
        sends_before = value(before, "digestbot_send_duration_seconds_count", channel="main")

        publisher = served.application.bot_data["publisher"]
        # One 429 first: the post is kept, every send held for retry_after, then it goes.
        fake_bot_api.inject("sendMessage", "429", retry_after=1, chat_id=MAIN)
        await publisher.post_now("main")
        await fake_bot_api.wait_for(MAIN, 3, timeout=15)

        after = await eventually(served.metrics,
                                 lambda m: value(m, "digestbot_posts_sent_total", channel="main") == 3)
        assert value(after, "digestbot_posts", channel="main", state="sent") == 3
        assert value(after, "digestbot_posts", channel="main", state="pending") == 0
        assert value(after, "digestbot_posts_sent_total", channel="other") == 0
        assert value(after, "digestbot_queue_depth", channel="main") == 0
        assert value(after, "digestbot_flood_waits_total") == 1
        assert value(after, "digestbot_flood_hold_seconds_total") >= 1
        # Four requests (the 429 and three sends), each timed.
        assert value(after, "digestbot_send_duration_seconds_count", channel="main") == sends_before + 4
        assert value(after, "digestbot_send_duration_seconds_bucket", channel="main", le="+Inf") == sends_before + 4
        last_sent = value(after, "digestbot_last_post_timestamp_seconds", channel="main")
        newest = max(m.date for m in fake_bot_api.replies(MAIN))
        assert abs(last_sent - newest) < 5
        assert value(after, "digestbot_channel_paused", channel="main") == 0
        assert value(after, "process_cpu_seconds_total") > 0
