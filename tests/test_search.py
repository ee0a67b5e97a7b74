"""Search: Chinese words of one and two characters, AND, phrases, exclusions, ranking, paging,
hostile input, and an index that follows ingest; on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import string
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from digests.ingest.pipeline import ingest
from digests.search.query import parse_query
from digests.search.rank import RANK_WINDOW
from digests.search.tokens import index_tokens
from digests.store import open_database, search, search_postgres
from digests.store.models import Item
from digests.store.search import search_items
from tests.conftest import fresh_postgres_url


def _text(item: Item) -> str:
    parts = [item.title, item.summary, item.commentary, item.source, " ".join(map(str, item.tags or []))]
    return unicodedata.normalize("NFKC", " ".join(parts)).casefold()


def _all(db, query: str) -> list[Item]:
    """Every result of query, read page by page."""
    results: list[Item] = []
    with db.session() as session:
        while True:
            page = search_items(session, query, limit=40, offset=len(results))
            results += page.results
            if not page.has_more:
                return results


def _assert_index_matches_content(db) -> None:
    """SQLite: FTS5 checks its index against search_docs, entry by entry (an entry inserted twice
    or missing fails). PostgreSQL keeps its index inside the row, nothing to drift."""
    if db.dialect == "sqlite":
        with db.session() as session:
            session.execute(text("INSERT INTO search_fts (search_fts, rank) VALUES ('integrity-check', 1)"))


def _titles(db, query: str, limit: int = 5) -> list[str]:
    with db.session() as session:
        return [item.title for item in search_items(session, query, limit=limit).results]


# ---------------------------------------------------------------------------------------------
# The seeds and the corpus, ingested once per database


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seeds_dir: Path,
    corpus_dir: Path,
):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'digest.db'}"
    else:
        url = fresh_postgres_url(request.getfixturevalue("postgres_base_url"))
    db = open_database(url)
    report = ingest(db, [seeds_dir, corpus_dir])
    assert report.items_new > 300
    _assert_index_matches_content(db)
    yield db
    db.dispose()


def test_two_character_word_finds_the_google_item(archive) -> None:
    assert "谷歌将某多多应用标记为恶意程序" in [item.title for item in _all(archive, "谷歌")]


def test_english_word_any_case_finds_seed_000_and_003(archive) -> None:
    for query in ("GAN", "gan", "Gan"):
        titles = [item.title for item in _all(archive, query)]
        assert "字节跳动开源最新 GAN 压缩算法" in titles
        assert any(title.startswith("OpenAI新论文称打败GAN达到SOTA") for title in titles)


def test_common_word_finds_many_items_every_one_containing_it(archive) -> None:
    found = _all(archive, "开源")
    assert len(found) > 10
    assert all("开源" in _text(item) for item in found)


def test_one_character_word_matches_wherever_the_character_occurs(archive) -> None:
    chip = _all(archive, "芯")
    assert chip and all("芯" in _text(item) for item in chip)
    assert {item.id for item in _all(archive, "芯片")} <= {item.id for item in chip}
    assert {item.id for item in _all(archive, "内核")} < {item.id for item in _all(archive, "核")}
    assert any(item.title.startswith("谷歌") for item in _all(archive, "谷"))


def test_words_are_anded(archive) -> None:
    both = {item.id for item in _all(archive, "谷歌 AI")}
    google = {item.id for item in _all(archive, "谷歌")}
    ai = {item.id for item in _all(archive, "ai")}
    assert both and both == google & ai
    assert both < google


def test_quoted_phrase_needs_the_words_together(archive) -> None:
    phrase = _all(archive, '"开源软件"')
    loose = _all(archive, "开源 软件")
    assert phrase and all("开源软件" in _text(item) for item in phrase)
    assert {item.id for item in phrase} < {item.id for item in loose}
    assert "以众包的方式在家用电脑上运行大语言模型" in _titles(archive, '"大语言模型"')


def test_minus_excludes(archive) -> None:
    linux = {item.id for item in _all(archive, "linux")}
    kernel = {item.id for item in _all(archive, "linux 内核")}
    without = _all(archive, "linux -内核")
    assert kernel and {item.id for item in without} == linux - kernel
    assert not any("内核" in _text(item) for item in without)
    assert _titles(archive, "-linux") == []


def test_emoji_and_full_width_input_are_just_ignored_or_folded(archive) -> None:
    assert _titles(archive, "🚀 谷歌 😀", 50) == _titles(archive, "谷歌", 50)
    assert _titles(archive, "ＧＡＮ", 50) == _titles(archive, "gan", 50)


HOSTILE = [
    string.printable,
    "".join(chr(c) for c in range(32, 127)),
    "'; DROP TABLE items; --",
    '" OR 1=1 --',
    "谷歌' OR '1'='1",
    '谷歌" OR "1"="1',
    "NEAR(谷歌 AI) AND title:linux OR {body}: x NOT y",
    "^谷歌 + 'a' & !b | c <-> d :* *",
    '\\\'\\"\\\\ -" -',
    '"unbalanced 谷歌',
    "-",
    "\x00\x01\t\n谷歌\u200b\ufeff",
    "a" * 10_000,
    "谷歌" * 5_000,
    "谷歌 " * 2_000,
    "-x " * 3_000,
    "".join(chr(c) for c in range(0x1F600, 0x1F650)),
    "𠀀𠀁𠀂 ｸﾞｰｸﾞﾙ グーグル 구글 Γκούγκλ",
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_any_user_string_is_safe(archive, query: str) -> None:
    with archive.session() as session:
        before = session.scalar(select(func.count(Item.id)))
        page = search_items(session, query, limit=5, offset=3)
        assert isinstance(page.results, list)
        after = session.scalar(select(func.count(Item.id)))
    assert before == after


@settings(max_examples=60, deadline=None)
@given(
    query=st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
    | st.lists(
        st.sampled_from(["谷歌", "AI", "-", '"', "“", "”", " ", "*", "'", "(", ":", "芯", "的", "\\"]),
        max_size=12,
    ).map("".join)
)
def test_random_queries_never_raise(archive, query: str) -> None:
    with archive.session() as session:
        page = search_items(session, query, limit=3, offset=1)
    assert len(page.results) <= 3


def test_every_printable_ascii_character_alone_and_doubled_is_safe(archive) -> None:
    with archive.session() as session:
        for c in range(32, 127):
            for query in (chr(c) * 2 + "谷歌", f"-{chr(c)} 谷歌{chr(c)}ai"):
                search_items(session, query)


def test_paging_through_a_very_common_word_is_stable_and_complete(archive) -> None:
    """的 matches more than the ranked window: the ranked window, then older matches."""
    with archive.session() as session:
        first = search_items(session, "的", limit=5)
        everything = search_items(session, "的", limit=2000).results
        expected = {
            item.id
            for item in session.scalars(select(Item).where(Item.removed.is_(False)))
            if "的" in _text(item)
        }
    assert first.total is None and first.has_more
    assert len(expected) > RANK_WINDOW
    paged = _all(archive, "的")
    assert [item.id for item in paged] == [item.id for item in everything]
    assert len(paged) == len(set(item.id for item in paged)) == len(expected)
    assert {item.id for item in paged} == expected
    pages: list[int] = []
    with archive.session() as session:
        while True:
            page = search_items(session, "的", limit=7, offset=len(pages))
            pages += [item.id for item in page.results]
            if not page.has_more:
                break
    assert pages == [item.id for item in paged]
    tail = paged[RANK_WINDOW:]
    assert tail == sorted(
        tail, key=lambda item: (item.published_at or datetime.min.replace(tzinfo=UTC), item.id), reverse=True
    )


FORCED = {
    "walk": {"_PG_WALK_ROW": 0.0},
    "window": {
        "_PG_WALK_ROW": 1e9,
        "_PG_HEAP_MATCH": 1e9,
        "_PG_WINDOW_ROW": 0.0,
        "_PG_WINDOW_MATCH": 0.0,
        "_PG_GIN_MATCH": {"word": 0.0, "phrase": 0.0, "prefix": 0.0},
    },
    "bitmap": {"_PG_HEAP_MATCH": 0.0, "_PG_GIN_MATCH": {"word": 0.0, "phrase": 0.0, "prefix": 0.0}},
}


@pytest.mark.parametrize("plan", FORCED)
def test_every_postgresql_plan_finds_the_same_pages(
    archive, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    """Walks, windows and bitmap scans, in small steps, give what one walk over everything gives."""
    if archive.dialect != "postgresql":
        pytest.skip("the stepwise plan is PostgreSQL's")
    with archive.session() as session:
        session.execute(text("ANALYZE search_docs"))
    queries = ["的", "开源", "谷歌 ai", '"开源软件"', "芯", "linux -内核", "gan", "zyxwvut"]
    expected = {query: [item.id for item in _all(archive, query)] for query in queries}
    assert len(expected["的"]) > 2 * RANK_WINDOW
    monkeypatch.setattr(search_postgres, "_PG_PROBE_ROWS", 10)
    for name, value in FORCED[plan].items():
        monkeypatch.setattr(search_postgres, name, value)
    for query in queries:
        assert [item.id for item in _all(archive, query)] == expected[query], query


def test_total_is_exact_below_the_window(archive) -> None:
    with archive.session() as session:
        page = search_items(session, "谷歌", limit=2)
    assert page.total == len(_all(archive, "谷歌"))
    assert page.has_more


# ---------------------------------------------------------------------------------------------
# Items written here (no ../shared needed)


def _add(session, n: int, title: str, summary: str = "", *, days: int = 0, **fields) -> Item:
    item = Item(
        fingerprint=f"fp-{n}",
        title=title,
        url=f"https://example.com/{n}",
        summary=summary,
        published_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=days),
        **fields,
    )
    session.add(item)
    session.flush()
    return item


def test_title_match_ranks_above_body_only_match_and_ties_go_to_the_newest(db) -> None:
    with db.session() as session:
        body = _add(session, 1, "每周新闻", "开源 开源 开源 开源 开源，到处都是开源", days=30)
        title_old = _add(session, 2, "开源数据库发布新版本", "详见官网。", days=1)
        tie_a = _add(session, 3, "又一个开源项目", "同样的正文。", days=5)
        tie_b = _add(session, 4, "又一个开源项目", "同样的正文。", days=9)
        tie_c = _add(session, 5, "又一个开源项目", "同样的正文。", days=9)
        unrelated = _add(session, 6, "芯片出货量下降", "市场低迷。", days=40)
        search.index_items(session, [body, title_old, tie_a, tie_b, tie_c, unrelated])
    with db.session() as session:
        ids = [item.id for item in search_items(session, "开源", limit=10).results]
    assert ids[-1] == body.id
    assert ids.index(tie_c.id) < ids.index(tie_b.id) < ids.index(tie_a.id)
    assert unrelated.id not in ids


def test_all_words_in_the_title_rank_above_some(db) -> None:
    with db.session() as session:
        one = _add(session, 1, "谷歌发布新手机", "顺带提到 AI 功能", days=9)
        both = _add(session, 2, "谷歌的 AI 模型", "正文", days=1)
        search.index_items(session, [one, both])
    with db.session() as session:
        assert [item.id for item in search_items(session, "谷歌 ai").results] == [both.id, one.id]


def test_paging_below_the_window_is_stable(db) -> None:
    with db.session() as session:
        items = [_add(session, n, f"测试条目 {n}", "内容" * (n % 4 + 1), days=n % 7) for n in range(1, 31)]
        search.index_items(session, items)
    with db.session() as session:
        whole = [item.id for item in search_items(session, "条目", limit=100).results]
        pages = [
            item.id
            for offset in range(0, 30, 4)
            for item in search_items(session, "条目", limit=4, offset=offset).results
        ]
        last = search_items(session, "条目", limit=4, offset=28)
    assert pages == whole and len(whole) == 30
    assert not last.has_more and last.total == 30


def test_empty_and_punctuation_only_queries_give_an_empty_page(db) -> None:
    with db.session() as session:
        search.index_items(session, [_add(session, 1, "任何标题", "任何内容")])
        for query in ("", "   ", "，。！？", "-任何", '""', "- -"):
            page = search_items(session, query)
            assert page.results == [] and page.total == 0 and not page.has_more


def test_many_items_past_the_window_page_in_order(db) -> None:
    n = RANK_WINDOW + 25
    with db.session() as session:
        items = [
            _add(session, i, f"硬核新闻 {i}", "正文" + ("硬核" if i % 3 else ""), days=i)
            for i in range(1, n + 1)
        ]
        search.index_items(session, items)
    with db.session() as session:
        first = search_items(session, "硬核", limit=RANK_WINDOW - 2)
        across = search_items(session, "硬核", limit=10, offset=RANK_WINDOW - 5)
        last = search_items(session, "硬核", limit=10, offset=n - 5)
    ranked = [item.id for item in first.results]
    assert first.total is None and first.has_more
    # the window is the newest RANK_WINDOW items, and within it items with the word twice come first
    assert set(ranked) <= {item.id for item in items[-RANK_WINDOW:]}
    assert [item.id for item in across.results][5:] == [
        item.id for item in reversed(items[: n - RANK_WINDOW])
    ][:5]
    assert [item.id for item in last.results] == [item.id for item in reversed(items[:5])]
    assert not last.has_more


def _linuxcn(
    first_title: str, first_body: str, *, url: str = "https://example.com/quantum-mouse", second: bool = True
) -> str:
    doc = f"""---
author: 硬核老王
category: 硬核观察
date: '2023-03-21 18:28:36'
id: 99001
permalink: /article-99001-1.html
tags: []
title: '硬核观察 #9001 {first_title}'
---

### {first_title}

{first_body}

> **[消息来源：Example News]({url})**

> 老王点评：点击之前，按钮既被按下又没被按下。
"""
    if second:
        doc += """
### 火星网络延迟创新低

火星基地的网络延迟降到了四分钟。

> **[消息来源：Mars Daily](https://example.com/mars-latency)**

> 老王点评：比我家的宽带快。
"""
    return doc


def test_index_follows_ingest_updates_and_removals(db, tmp_path: Path) -> None:
    doc = tmp_path / "hardcore.md"
    doc.write_text(_linuxcn("量子鼠标问世", "某公司发布了量子鼠标，可以同时点击两个按钮。"), encoding="utf-8")
    ingest(db, [doc])
    assert _titles(db, "鼠标") == ["量子鼠标问世"]
    assert _titles(db, "火星") == ["火星网络延迟创新低"]

    keyboard = "https://example.com/quantum-keyboard"
    doc.write_text(
        _linuxcn("量子键盘问世", "某公司发布了量子键盘，按键既按下又没按下。", url=keyboard), encoding="utf-8"
    )
    assert ingest(db, [doc]).items_removed == 1
    assert _titles(db, "键盘") == ["量子键盘问世"]
    assert _titles(db, "鼠标") == []

    doc.write_text(_linuxcn("量子键盘问世", "正文改写：现在它还支持蓝牙。", url=keyboard), encoding="utf-8")
    report = ingest(db, [doc])
    assert report.items_updated == 1
    assert _titles(db, "蓝牙") == ["量子键盘问世"]
    assert _titles(db, "量子 按键") == []

    doc.write_text(
        _linuxcn("量子键盘问世", "正文改写：现在它还支持蓝牙。", url=keyboard, second=False), encoding="utf-8"
    )
    assert ingest(db, [doc]).items_removed == 1
    assert _titles(db, "火星") == []
    assert _titles(db, "-火星 量子") == ["量子键盘问世"]
    _assert_index_matches_content(db)


def test_removed_and_edited_items_follow_the_hooks_and_rebuild(db) -> None:
    with db.session() as session:
        kept = _add(session, 1, "龙芯发布新处理器", "国产 CPU")
        gone = _add(session, 2, "龙芯停产旧型号", "国产 CPU")
        search.index_items(session, [kept, gone])
        search.unindex_items(session, [gone.id])
        gone.removed = True
    assert _titles(db, "龙芯") == ["龙芯发布新处理器"]
    with db.session() as session:
        item = session.get(Item, kept.id)
        item.published_at = datetime(2030, 5, 5, tzinfo=UTC)
        item.title = "兆芯发布新处理器"
        search.index_items(session, [item, session.get(Item, gone.id)])
    assert _titles(db, "龙芯") == []
    assert _titles(db, "兆芯") == ["兆芯发布新处理器"]
    with db.session() as session:
        assert search.rebuild_index(session) == 1
    assert _titles(db, "兆芯 cpu") == ["兆芯发布新处理器"]
    assert _titles(db, "停产") == []
    _assert_index_matches_content(db)


def test_migration_indexes_existing_items_and_downgrades(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from digests.store.db import MIGRATIONS

    db = open_database(db_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        with db.session() as session:
            _add(session, 1, "迁移之前就有的条目", "它应当能被搜到")
        db.upgrade()
        assert _titles(db, "迁移") == ["迁移之前就有的条目"]
        _assert_index_matches_content(db)

        # A database made before 0003 indexed new rows by trigger; after the upgrade the code
        # does, and nothing is indexed twice.
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002")
        db.upgrade()
        with db.session() as session:
            search.index_items(session, [_add(session, 2, "升级之后新增的条目")])
        assert _titles(db, "升级") == ["升级之后新增的条目"]
        _assert_index_matches_content(db)
    finally:
        db.dispose()


# ---------------------------------------------------------------------------------------------
# The tokenizer and the parser (pure)


def test_tokens_every_cjk_character_starts_one_token() -> None:
    assert index_tokens("谷歌将某，AI芯") == ["谷歌", "歌将", "将某", "某", "ai", "芯"]
    assert index_tokens("Café GPT-4 ＧＰＵ") == ["cafe", "gpt", "4", "gpu"]


def test_parse_query_words_phrases_exclusions() -> None:
    parsed = parse_query('谷歌 AI "大语言 模型" -广告 -"付费 内容" “开源软件”')
    assert parsed.terms == ("谷歌", "AI")
    assert parsed.phrases == ("大语言 模型", "开源软件")
    assert parsed.excluded == ("广告", "付费 内容")
    assert parse_query("，。!?").is_empty
    assert parse_query("-只有排除").is_empty
