"""Sources, the pure parts: locations, config, conditional GET, Retry-After, backoff, switch-off, OPML, JSON Feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import config_from_mapping
from digests.config import config_from_mapping as core_config
from digests.errors import ConfigError, ParseError
from digests.parsers import detect_format, jsonfeed
from digests.source_config import interval_seconds
from digests.source_locations import GIT, HTTP, PATH, parse_location
from digests.sources.opml import OpmlFeed, read_opml, write_opml
from digests.sources.policy import (
    conditional_headers,
    failure_delay,
    is_selected,
    next_fetch_at,
    retry_after_seconds,
    switches_off,
    truncation_problem,
    validators,
)
from tests.feed_server import entries, json_feed, rss

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Locations and config


def test_locations_of_every_kind() -> None:
    assert parse_location("./archive").kind == PATH
    assert parse_location("~/news").path.endswith("/news") and "~" not in parse_location("~/news").path
    feed = parse_location("https://linux.cn/rss.xml")
    assert (feed.kind, feed.url) == (HTTP, "https://linux.cn/rss.xml")
    repo = parse_location("git+https://github.com/LCTT/TranslateProject.git#master:published")
    assert (repo.kind, repo.url, repo.branch, repo.subdir) == (
        GIT, "https://github.com/LCTT/TranslateProject.git", "master", "published")
    assert parse_location("git+file:///srv/repo.git#:posts/").subdir == "posts"
    assert parse_location("git+ssh://git@example.org/news.git").branch == ""
    # Document paths never carry a token, and name branch and file.
    token = parse_location("git+https://user:s3cret@example.org/r.git#main")
    assert token.git_document_path("main", "a.md") == "git+https://example.org/r.git#main:a.md"


@pytest.mark.parametrize(("text", "why"), [
    ("ftp://example.org/feed", "unsupported URL scheme 'ftp'"),
    ("git+ftp://example.org/r.git", "unsupported git transport 'ftp'"),
    ("git+https://example.org/r.git#bad..branch", "not a valid branch name"),
    ("git+https://example.org/r.git#main:../etc", "plain path inside the repository"),
    ("git+file://host/r.git", "needs an absolute path"),
    ("http:///feed.xml", "has no host name"),
    ("https://example.org:99999/feed", "not a valid URL"),
])
def test_bad_locations_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_location(text)


def test_intervals() -> None:
    assert interval_seconds("every 30m") == 1800
    assert interval_seconds("2h") == 7200
    assert interval_seconds("every 1s") == 1
    with pytest.raises(ValueError, match="every 30m"):
        interval_seconds("hourly")


def test_source_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"sources": [
            {"name": "lctt", "url": "git+https://example.org/r.git", "interval": "soon"},
            {"name": "both", "url": "https://example.org/rss", "path": "./x"},
            {"name": "feed", "url": "https://example.org/rss", "select": ["*.md"]},
            {"name": "ftp", "url": "ftp://example.org/"},
        ]})
    message = str(caught.value)
    assert "sources[0:lctt].interval: interval 'soon' must look like 'every 30m'" in message
    assert "sources[1:both]: give exactly one of url:" in message
    assert "sources[2:feed]: select: applies to folders and git repositories" in message
    assert "sources[3:ftp].url: 'ftp://example.org/': unsupported URL scheme 'ftp'" in message


def test_duplicate_source_names_and_proxy_forms() -> None:
    with pytest.raises(ConfigError, match="source name 'a' is used twice"):
        config_from_mapping({"sources": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]})
    both = config_from_mapping({"proxy": "socks5://127.0.0.1:1080"}).proxy
    assert both.fetch == both.telegram == "socks5://127.0.0.1:1080"
    split = config_from_mapping({"proxy": {"telegram": "http://127.0.0.1:8118"}}).proxy
    assert (split.fetch, split.telegram) == (None, "http://127.0.0.1:8118")
    with pytest.raises(ConfigError, match=r"proxy\.fetch: .*must start with http://, https://, socks5://"):
        config_from_mapping({"proxy": {"fetch": "127.0.0.1:1080"}})
    with pytest.raises(ConfigError, match=r"fetch\.max_redirects"):
        config_from_mapping({"fetch": {"max_redirects": 9}})
    with pytest.raises(ConfigError, match=r"proxy\.telegram: .*must start with http://, https://, socks5://"):
        config_from_mapping({"proxy": {"telegram": "127.0.0.1:1080"}})


def test_the_core_config_knows_only_the_fetch_proxy() -> None:
    """digests knows nothing of Telegram: its proxy section is the fetcher's alone."""
    assert core_config({"proxy": "socks5://127.0.0.1:1080"}).proxy.model_dump() == {"fetch": "socks5://127.0.0.1:1080"}
    with pytest.raises(ConfigError, match=r"proxy\.telegram: unknown key"):
        core_config({"proxy": {"telegram": "http://127.0.0.1:8118"}})


# ---------------------------------------------------------------------------------------------
# Conditional GET, Retry-After, backoff, switch-off


def test_conditional_headers_send_back_what_the_server_said() -> None:
    assert conditional_headers(None, None) == {}
    etag, modified = validators({"etag": '"abc"', "last-modified": "Wed, 01 May 2024 10:00:00 GMT"})
    assert conditional_headers(etag, modified) == {"If-None-Match": '"abc"',
                                                    "If-Modified-Since": "Wed, 01 May 2024 10:00:00 GMT"}


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("120", NOW) == 120
    assert retry_after_seconds("Wed, 01 May 2024 12:05:00 GMT", NOW) == 300
    assert retry_after_seconds("Wed, 01 May 2024 11:00:00 GMT", NOW) == 0  # already past
    assert retry_after_seconds("99999999999", NOW) == 7 * 86400  # capped at a week
    assert retry_after_seconds("soon", NOW) is None and retry_after_seconds(None, NOW) is None


def test_next_fetch_after_success_failures_and_retry_after() -> None:
    assert next_fetch_at(NOW, interval=1800, failures=0) == NOW + timedelta(seconds=1800)
    delays = [(next_fetch_at(NOW, interval=60, failures=n, base=60, maximum=3600, rand=0.999) - NOW).total_seconds()
              for n in range(1, 10)]
    assert delays == sorted(delays) and delays[-1] <= 3600  # grows, up to the maximum
    assert delays[1] > 1.9 * delays[0] * 0.5
    # The server's Retry-After wins when it is longer than the backoff.
    assert next_fetch_at(NOW, interval=60, failures=1, retry_after=900, rand=0.0) == NOW + timedelta(seconds=900)


@settings(max_examples=200, deadline=None)
@given(failures=st.integers(1, 60), interval=st.integers(1, 86400), rand=st.floats(0, 0.999999))
def test_backoff_has_jitter_and_is_never_sooner_than_half_the_interval(failures: int, interval: int,
                                                                      rand: float) -> None:
    delay = failure_delay(failures, interval=interval, base=60, maximum=86400, rand=rand)
    full = min(max(86400, interval), max(interval, 60) * 2 ** (failures - 1))
    assert full / 2 <= delay <= full
    assert delay >= interval / 2


def test_a_source_is_switched_off_once() -> None:
    assert [switches_off(n - 1, n, 3) for n in range(1, 6)] == [False, False, True, False, False]


def test_truncated_feeds_are_recognised() -> None:
    whole = rss("T", entries("t", 3)).encode()
    assert truncation_problem(whole) is None
    assert truncation_problem(whole + b"\n<!-- generated -->\n") is None
    assert truncation_problem(whole[: len(whole) // 2]) == "truncated XML: the feed ends before its closing </rss>"
    assert truncation_problem(b"<html><body>not a feed</body></html>") is None  # that is another error
    atom_cut = b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry>'
    assert "</feed>" in (truncation_problem(atom_cut) or "")


def test_select_patterns() -> None:
    assert is_selected("published/2024/a.md", [])
    assert not is_selected(".github/workflows/ci.md", [])
    assert is_selected("published/2024/a.md", ["*.md"]) and not is_selected("img/a.png", ["*.md"])
    assert is_selected("a.md", ["**/*.md"]) and is_selected("x/a.md", ["**/*.md"])
    assert not is_selected("drafts/a.md", ["published/*"])


# ---------------------------------------------------------------------------------------------
# OPML and JSON Feed


def test_opml_round_trip_and_nested_outlines() -> None:
    nested = b"""<?xml version="1.0"?><opml version="1.0"><head><title>mine</title></head><body>
      <outline text="Tech"><outline text="Solidot" xmlUrl="https://www.solidot.org/index.rss"/>
      <outline title="LWN" xmlurl="https://lwn.net/headlines/rss" /></outline>
      <outline text="dup" xmlUrl="https://lwn.net/headlines/rss"/><outline text="folder only"/></body></opml>"""
    assert read_opml(nested) == [OpmlFeed("Solidot", "https://www.solidot.org/index.rss"),
                                 OpmlFeed("LWN", "https://lwn.net/headlines/rss")]
    with pytest.raises(ParseError, match="not a readable OPML file"):
        read_opml(b"<opml><body>")
    with pytest.raises(ParseError, match="root element is not <opml>"):
        read_opml(b"<rss/>")


_TITLE = st.text(st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\ufffe\uffff"),
                min_size=1, max_size=30).filter(lambda t: t.strip() != "")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(_TITLE,
                          st.from_regex(r"https://[a-z]{1,10}\.example\.org/[a-z0-9&?=]{0,12}", fullmatch=True)),
                max_size=8, unique_by=lambda pair: pair[1]))
def test_opml_written_reads_back(pairs: list[tuple[str, str]]) -> None:
    feeds = [OpmlFeed(" ".join(title.split()), url) for title, url in pairs]
    assert read_opml(write_opml(feeds, title="t", now=NOW).encode()) == feeds


def test_entity_expansion_is_refused() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE o [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b'<opml><body><outline text="&e;" xmlUrl="https://example.org/rss"/></body></opml>')
    with pytest.raises(ParseError, match="external entity"):  # never read, refused with the reason
        read_opml(bomb)


def test_json_feed_items() -> None:
    text = json_feed("JSON 源", entries("j", 3))
    assert detect_format(text) is jsonfeed
    items = jsonfeed.parse(text)
    assert [i.title for i in items] == ["j 新闻 0", "j 新闻 1", "j 新闻 2"]
    first = items[0]
    assert first.url == "https://news.example.org/j/0" and first.source == "JSON 源"
    assert first.published_at == datetime(2024, 5, 1, 0, 0, tzinfo=UTC) and first.tags == ["fixture"]
    assert len({i.key for i in items}) == 3
    with pytest.raises(ParseError, match="no items list"):
        jsonfeed.parse('{"version": "https://jsonfeed.org/version/1", "title": "x"}')
