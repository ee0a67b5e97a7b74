"""Feed and document URLs against a real HTTP server on 127.0.0.1: conditional GET, formats, faults,
switch-off, Retry-After, the per-host limit, proxies, OPML and the command line."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.config import config_from_mapping
from digests.clock import utcnow
from digests.source_config import FetchConfig, SourceConfig
from digests.sources.refresh import Refresher
from digests.sources.registry import find_source, records, source_health, switch_source, sync_config
from digests.store.db import Database
from tests.feed_server import FeedServer, atom, entries, json_feed, linuxcn_markdown, rss
from tests.proxies import ForwardProxy, Socks5Proxy

FAST = {"connect_timeout": 2, "read_timeout": 0.5, "total_timeout": 1.5, "max_bytes": 1024 * 1024,
        "backoff_seconds": 1, "max_failures": 3}


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as feeds:
        yield feeds


def fetch_config(**overrides: Any) -> FetchConfig:
    return FetchConfig(**{**FAST, **overrides})


def follow(db: Database, *sources: tuple[str, str]) -> None:
    sync_config(db, [SourceConfig(name=name, url=url, interval="every 1m") for name, url in sources], utcnow())


def refresh(db: Database, names: list[str] | None = None, **fetch: Any) -> dict[str, Any]:
    refresher = Refresher(db, fetch_config(**fetch))
    try:
        return {o.name: o for o in refresher.refresh(records(db, names or []))}
    finally:
        refresher.close()


def stored_items(db: Database) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from digests.store.models import Document, Item

    with db.session() as session:
        return list(session.execute(select(Document.path, Item.title).join(Item, Item.document_id == Document.id)
                                    .where(Item.removed.is_(False)).order_by(Item.id)))


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """main() with a config of fast timeouts; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'cli.db'}"}, "fetch": FAST}),
                      encoding="utf-8")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


# ---------------------------------------------------------------------------------------------
# Acceptance: the command line, conditional GET


def test_ingest_a_feed_url_then_an_unchanged_feed_costs_one_304(server: FeedServer, cli: Any) -> None:
    route = server.serve("/feed.xml", rss("示例科技新闻", entries("r", 20)))
    url = server.url("/feed.xml")
    code, out, err = cli("ingest", url, "--json")
    assert code == 0, err
    [first] = json.loads(out)["sources"]
    assert (first["status"], first["http_status"], first["items_added"]) == ("ok", 200, 20)

    code, out, _ = cli("ingest", url)
    assert code == 0
    assert out.strip() == f"{url}: unchanged, HTTP 304 not modified"
    again = server.requests_for("/feed.xml")[-1].headers
    assert again["if-none-match"] == route.etag and again["if-modified-since"] == route.last_modified
    assert re.fullmatch(r"hardcore-digest/\d[\w.]* \(digestbot feed fetcher\)", again["user-agent"])
    assert "gzip" in again["accept-encoding"]

    code, out, _ = cli("items", "--json", "--limit", "100")
    items = json.loads(out)
    assert len(items) == 20 and {item["document"] for item in items} == {url}
    assert items[0]["source"] == "示例科技新闻"


def test_every_format_over_http(server: FeedServer, sqlite_db: Database) -> None:
    server.serve("/rss.xml", rss("R", entries("r", 4)))
    server.serve("/atom.xml", atom("A", entries("a", 3)), content_type="application/atom+xml")
    server.serve("/feed.json", json_feed("J", entries("j", 2)), content_type="application/feed+json")
    server.serve("/2024-hardcore.md", linuxcn_markdown(42001, entries("m", 3)), content_type="text/markdown")
    follow(sqlite_db, *[(name, server.url(path)) for name, path in
                        [("rss", "/rss.xml"), ("atom", "/atom.xml"), ("json", "/feed.json"), ("md", "/2024-hardcore.md")]])
    outcomes = refresh(sqlite_db)
    assert {name: (o.status, o.items_added) for name, o in outcomes.items()} == {
        "rss": ("ok", 4), "atom": ("ok", 3), "json": ("ok", 2), "md": ("ok", 3)}
    titles = {title for _, title in stored_items(sqlite_db)}
    assert {"a 新闻 0", "j 新闻 1", "m 新闻 2"} <= titles


def test_last_modified_alone_makes_the_get_conditional(server: FeedServer, sqlite_db: Database) -> None:
    route = server.serve("/feed.xml", rss("R", entries("r", 2)))
    route.etag = None
    follow(sqlite_db, ("feed", server.url("/feed.xml")))
    refresh(sqlite_db)
    assert refresh(sqlite_db)["feed"].http_status == 304
    headers = server.requests_for("/feed.xml")[-1].headers
    assert headers["if-modified-since"] == route.last_modified and "if-none-match" not in headers


def test_a_new_entry_is_the_only_thing_added(server: FeedServer, sqlite_db: Database) -> None:
    server.serve("/feed.xml", rss("R", entries("r", 3)))
    follow(sqlite_db, ("feed", server.url("/feed.xml")))
    assert refresh(sqlite_db)["feed"].items_added == 3
    server.serve("/feed.xml", rss("R", entries("r", 4)))
    outcome = refresh(sqlite_db)["feed"]
    assert (outcome.status, outcome.items_added, outcome.http_status) == ("ok", 1, 200)
    assert len(stored_items(sqlite_db)) == 4


# ---------------------------------------------------------------------------------------------
# Faults: each a clear error on its own source; the others go on


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAULTS: dict[str, tuple[dict[str, Any], str]] = {
    "status500": ({"mode": "status", "status": 500}, r"^HTTP 500 Internal Server Error$"),
    "status429": ({"mode": "status", "status": 429, "retry_after": "120"}, r"^HTTP 429 Too Many Requests; Retry-After 120 s$"),
    "hang": ({"mode": "hang", "delay": 5}, r"^no answer within 0\.5 s \(fetch\.read_timeout\)$"),
    "drip": ({"mode": "drip", "delay": 0.1}, r"^too slow: not complete after 1\.5 s \(fetch\.total_timeout\)$"),
    "huge": ({"mode": "huge"}, r"^too large: the server announces 200\.0 MB, the limit is 1\.0 MB \(fetch\.max_bytes\); "
                                r"not downloaded$"),
    "endless": ({"mode": "huge", "announce_length": False}, r"^too large: more than 1\.0 MB \(fetch\.max_bytes\); "
                                                            r"stopped reading$"),
    "loop": ({"mode": "loop"}, r"^more than 5 redirects \(a redirect loop\?\)$"),
    "cut": ({"mode": "truncate", "body": rss("C", entries("c", 5)).encode()}, r"^the server broke off the answer"),
}
BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "html": (b"<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>", r"^unknown format: not a linux\.cn"),
    "truncated": (rss("T", entries("t", 5)).encode()[:700], r"^truncated XML: the feed ends before its closing </rss>$"),
    "garbage": (bytes(range(256)) * 8, r"^binary data"),
}


def test_each_fault_is_a_clear_error_on_its_source_and_the_rest_is_ingested(server: FeedServer,
                                                                            sqlite_db: Database) -> None:
    server.serve("/good.xml", rss("Good", entries("g", 5)))
    for name, (route, _) in FAULTS.items():
        server.fault(f"/{name}", **route)
    for name, (body, _) in BAD_BODIES.items():
        server.serve(f"/{name}", body, content_type="text/html")
    refused = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    # The 429 under another host name: a host's Retry-After holds its other feeds too.
    urls = {name: server.url(f"/{name}") for name in [*FAULTS, *BAD_BODIES]}
    urls["status429"] = urls["status429"].replace("127.0.0.1", "localhost")
    follow(sqlite_db, ("good", server.url("/good.xml")), ("refused", refused), *urls.items())

    outcomes = refresh(sqlite_db)
    assert (outcomes["good"].status, outcomes["good"].items_added) == ("ok", 5)
    expected = {name: pattern for name, (_, pattern) in {**FAULTS, **BAD_BODIES}.items()}
    expected["refused"] = r"^cannot connect: "
    for name, pattern in expected.items():
        outcome = outcomes[name]
        assert outcome.status == "failed", name
        assert outcome.error is not None and re.search(pattern, outcome.error), (name, outcome.error)
    # Nothing half-written: only the good feed's items are stored.
    assert {path for path, _ in stored_items(sqlite_db)} == {server.url("/good.xml")}
    health = {h.name: h for h in source_health(sqlite_db)}
    assert health["status500"].error == "HTTP 500 Internal Server Error"
    assert health["status500"].consecutive_failures == 1 and health["status500"].http_status == 500
    assert health["good"].state == "ok" and health["good"].consecutive_failures == 0


def test_a_failing_source_is_switched_off_once_and_on_again(server: FeedServer, sqlite_db: Database) -> None:
    server.fault("/down.xml", "status", status=500)
    follow(sqlite_db, ("down", server.url("/down.xml")))
    notices = [refresh(sqlite_db, ["down"])["down"].notice for _ in range(4)]
    assert notices[:2] == [None, None] and notices[3] is None
    assert notices[2] is not None and "switched off after 3 failures in a row" in notices[2]
    assert "/sources enable down" in notices[2]
    [health] = source_health(sqlite_db)
    assert health.state == "switched off" and health.next_fetch is None
    assert records(sqlite_db) == []  # a round of every source leaves it out

    server.serve("/down.xml", rss("Back", entries("b", 2)))
    switch_source(sqlite_db, "down", on=True, actor="test", now=utcnow())
    assert find_source(sqlite_db, "down").consecutive_failures == 0
    outcome = refresh(sqlite_db)["down"]
    assert (outcome.status, outcome.items_added) == ("ok", 2)


def test_retry_after_is_obeyed_for_the_source_and_its_host(server: FeedServer, sqlite_db: Database) -> None:
    server.fault("/busy.xml", "status", status=503, retry_after="300")
    server.serve("/other.xml", rss("O", entries("o", 1)))
    follow(sqlite_db, ("busy", server.url("/busy.xml")), ("other", server.url("/other.xml")))
    refresher = Refresher(sqlite_db, fetch_config())
    try:
        [busy] = refresher.refresh(records(sqlite_db, ["busy"]))
        assert busy.error == "HTTP 503 Service Unavailable; Retry-After 300 s"
        assert find_source(sqlite_db, "busy").next_fetch_at >= utcnow() + timedelta(seconds=290)
        # The same host's other feed waits too, without a request.
        [other] = refresher.refresh(records(sqlite_db, ["other"]))
        assert other.status == "waiting" and server.requests_for("/other.xml") == []
        # Asked again by hand: still waiting, the server is not asked.
        [again] = refresher.refresh(records(sqlite_db, ["busy"]))
        assert again.status == "waiting" and len(server.requests_for("/busy.xml")) == 1
    finally:
        refresher.close()


def test_at_most_per_host_requests_at_once(server: FeedServer, sqlite_db: Database) -> None:
    for n in range(8):
        server.serve(f"/f{n}.xml", rss(f"F{n}", entries(f"f{n}", 1)), delay=0.3)
    follow(sqlite_db, *[(f"f{n}", server.url(f"/f{n}.xml")) for n in range(8)])
    outcomes = refresh(sqlite_db, per_host=2, concurrency=8)
    assert all(o.status == "ok" for o in outcomes.values())
    assert server.max_in_flight == 2


# ---------------------------------------------------------------------------------------------
# Proxies


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_fetching_through_a_proxy(kind: str, server: FeedServer, sqlite_db: Database) -> None:
    server.serve("/feed.xml", rss("P", entries("p", 2)))
    follow(sqlite_db, ("feed", server.url("/feed.xml")))
    with ForwardProxy() if kind == "http" else Socks5Proxy() as proxy:
        refresher = Refresher(sqlite_db, fetch_config(), proxy=proxy.url)
        try:
            [outcome] = refresher.refresh(records(sqlite_db))
        finally:
            refresher.close()
        seen = list(proxy.seen)
    assert (outcome.status, outcome.items_added) == ("ok", 2)
    if kind == "http":
        assert seen == [f"GET {server.url('/feed.xml')}"]
    else:
        assert seen == [("127.0.0.1", server.port)]


async def test_telegram_requests_go_through_the_proxy(fake_bot_api: Any, sqlite_db: Database) -> None:
    from bot.app import build_application

    with ForwardProxy() as proxy:
        config = config_from_mapping({"telegram": {"token": fake_bot_api.token, "base_url": fake_bot_api.base_url},
                                      "proxy": {"telegram": proxy.url}})
        application = build_application(config, sqlite_db)
        async with application:
            me = await application.bot.get_me()
        assert me.is_bot
        assert any(line.startswith("POST ") and line.endswith("/getMe") for line in proxy.seen)


# ---------------------------------------------------------------------------------------------
# OPML, health and stats on the command line


def test_opml_import_export_refresh_and_health(server: FeedServer, cli: Any, tmp_path: Path) -> None:
    server.serve("/a.xml", rss("A", entries("a", 2)))
    server.serve("/b.xml", rss("B", entries("b", 3)))
    opml = tmp_path / "feeds.opml"
    opml.write_text(f"""<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>
      <outline text="Alpha News" xmlUrl="{server.url('/a.xml')}"/>
      <outline text="硬核" xmlUrl="{server.url('/b.xml')}"/>
      <outline text="Old" xmlUrl="ftp://example.org/feed"/></body></opml>""", encoding="utf-8")
    code, out, _ = cli("sources", "import", str(opml), "--interval", "every 10m", "--json")
    result = json.loads(out)
    assert code == 0 and result["added"] == ["Alpha-News", "127.0.0.1-b.xml"]
    assert "unsupported URL scheme 'ftp'" in result["skipped"][0]["reason"]
    code, out, _ = cli("sources", "import", str(opml), "--json")
    assert json.loads(out)["added"] == []  # already followed

    code, out, _ = cli("sources", "export")
    assert server.url("/a.xml") in out and server.url("/b.xml") in out and "<opml" in out

    code, out, _ = cli("sources", "refresh")
    assert code == 0 and "Alpha-News: ok, HTTP 200" in out

    code, out, _ = cli("sources", "--json")
    health = {h["name"]: h for h in json.loads(out)}
    alpha = health["Alpha-News"]
    assert (alpha["kind"], alpha["state"], alpha["http_status"], alpha["items_added"]) == ("http", "ok", 200, 2)
    assert alpha["next_fetch"] is not None and alpha["consecutive_failures"] == 0
    for key in ("last_fetch", "last_change", "git_commit"):
        assert key in alpha

    code, out, _ = cli("stats", "--json")
    assert json.loads(out)["sources"] == {"sources": 2, "failing": 0, "switched_off": 0, "items_added": 5}

    code, out, _ = cli("sources", "remove", "Alpha-News")
    assert code == 0 and "no longer followed" in out
    code, _, err = cli("sources", "enable", "nope")
    assert code == 2 and "no source named 'nope'" in err


def test_cli_faults_set_the_exit_code_and_name_the_source(server: FeedServer, cli: Any) -> None:
    server.serve("/good.xml", rss("G", entries("g", 1)))
    server.serve("/page.html", b"<html><body>Login</body></html>", content_type="text/html")
    code, out, err = cli("ingest", server.url("/good.xml"), server.url("/page.html"))
    assert code == 1 and "Traceback" not in err
    assert f"{server.url('/good.xml')}: ok" in out
    assert f"{server.url('/page.html')}: failed" in out and "unknown format" in out
    code, _, err = cli("ingest", "gopher://example.org/feed")
    assert code == 2 and "unsupported URL scheme 'gopher'" in err
