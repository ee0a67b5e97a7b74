"""linux.cn parser: golden fixtures per column variant, the seeds, the real corpus, and fuzzing."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digests.errors import ParseError
from digests.items import ParsedItem
from digests.parsers import linuxcn

DATA = Path(__file__).resolve().parent / "data" / "linuxcn"
CASES = sorted(path.stem for path in DATA.glob("*.md"))
SHANGHAI = ZoneInfo("Asia/Shanghai")


def read(path: Path) -> str:
    """The file's text with its line endings untouched (CRLF must reach the parser)."""
    return path.read_bytes().decode("utf-8")


def comparable(item: ParsedItem) -> dict[str, Any]:
    fields = dataclasses.asdict(item)
    del fields["key"]  # keys are hashes; their behaviour is tested on its own below
    fields["published_at"] = item.published_at.isoformat() if item.published_at else None
    return fields


def parse_fixture(case: str) -> list[ParsedItem]:
    return linuxcn.parse(read(DATA / f"{case}.md"), path=f"{case}.md")


# --- golden fixtures, one per variant of the column -------------------------------------------


def test_every_fixture_has_a_golden_file() -> None:
    assert set(CASES) == {"autumn2021", "column2024", "lctt_article", "news2022", "spring2021"}
    assert all((DATA / f"{case}.expected.json").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_fixture_matches_golden_items(case: str) -> None:
    expected = json.loads((DATA / f"{case}.expected.json").read_text(encoding="utf-8"))
    assert [comparable(item) for item in parse_fixture(case)] == expected


@pytest.mark.parametrize("case", CASES)
def test_fixture_is_claimed_by_sniff(case: str) -> None:
    assert linuxcn.sniff(read(DATA / f"{case}.md"))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_endings_do_not_change_the_items(newline: str) -> None:
    # Forced here too, so the test holds even if git normalises the fixture's CRLF on checkout.
    for case in CASES:
        text = read(DATA / f"{case}.md").replace("\r\n", "\n").replace("\n", newline)
        assert linuxcn.parse(text) == parse_fixture(case), case


def test_column_2024_drops_illustration_notes_and_heading_numbers() -> None:
    items = parse_fixture("column2024")
    assert [item.title for item in items][:2] == ["某内核补丁集被合并", "一个命令行工具改用 Rust 重写"]
    assert not any("插图" in item.summary or "\r" in item.summary for item in items)


def test_keys_are_unique_and_name_the_kind() -> None:
    for case in CASES:
        items = parse_fixture(case)
        keys = [item.key for item in items]
        assert len(set(keys)) == len(keys), case
        for item in items:
            assert item.key == "article" if item.kind == "article" else item.key.startswith(f"{item.kind}-")


def test_keys_survive_reordering_renumbering_and_a_new_section() -> None:
    text = read(DATA / "news2022.md")
    before = {item.title: item.key for item in linuxcn.parse(text)}
    first = text.index("### 某语言基金会")
    second = text.index("### 一家云厂商")
    echo = text.index("### 回音")
    new_section = "### 新插入的一条新闻\n\n某公司发布了新产品。\n\n> \n> 老王点评：拭目以待。\n\n"
    edited = text[:first] + new_section + text[second:echo] + text[first:second] + text[echo:]
    after = {item.title: item.key for item in linuxcn.parse(edited)}
    assert len(after) == len(before) + 1
    assert {title: after[title] for title in before} == before

    text_2024 = read(DATA / "column2024.md")
    renumbered = text_2024.replace("### #1 ", "### #7 ").replace("### #2 ", "### #1 ")
    assert [i.key for i in linuxcn.parse(renumbered)] == [i.key for i in linuxcn.parse(text_2024)]


def test_same_title_twice_gets_distinct_keys() -> None:
    text = read(DATA / "autumn2021.md").replace("### 某芯片厂商推迟新工艺", "### 一个浏览器份额调查")
    keys = [item.key for item in linuxcn.parse(text)]
    assert len(set(keys)) == 3


def test_column_without_sections_is_one_item() -> None:
    head = read(DATA / "spring2021.md").split("\n---\n", 1)[0]
    items = linuxcn.parse(head + "\n---\n\n只有一段文字，没有小标题。\n")
    assert [(item.key, item.kind, item.url) for item in items] == [
        ("article", "article", "https://linux.cn/article-90001-1.html")
    ]


def test_article_without_summary_uses_its_first_paragraph() -> None:
    text = (
        "---\ntitle: 一篇文章\nid: 42\ndate: 2020-02-03\nislctt: false\n---\n\n"
        "![](/img/a.png)\n\n这是 **第一段**，有一个[链接](https://example.org/a)。\n\n"
        "第二段有[空链接]()、[锚点](#x)和[邮件](mailto:a@example.org)。\n"
    )
    [item] = linuxcn.parse(text)
    assert item.summary == "这是 第一段，有一个链接。"
    assert item.url == "https://linux.cn/article-42-1.html"
    assert item.image == "https://linux.cn/img/a.png"
    assert item.links == ["https://linux.cn/article-42-1.html", "https://example.org/a"]
    assert item.published_at == datetime(2020, 2, 3, tzinfo=SHANGHAI)


# --- errors a user can act on ------------------------------------------------------------------

GOOD_HEAD = "---\ntitle: 标题\npermalink: /article-1-1.html\ndate: '2021-01-02 03:04:05'\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("just some text\n", "front matter"),
        ("---\ntitle: 标题\npermalink: /article-1-1.html\n", "not closed"),
        ("---\ntitle: [unclosed\npermalink: /article-1-1.html\n---\n", "YAML"),
        ("---\npermalink: /article-1-1.html\n---\n正文\n", "title"),
        ("---\ntitle: ''\npermalink: /article-1-1.html\n---\n正文\n", "title"),
        ("---\ntitle: {a: 1}\npermalink: /article-1-1.html\n---\n", "title"),
        ("---\ntitle: 标题\n---\n正文\n", "permalink"),
        (GOOD_HEAD.replace("'2021-01-02 03:04:05'", "'2021-13-45 10:00:00'") + "---\n", "date"),
        (GOOD_HEAD.replace("'2021-01-02 03:04:05'", "昨天") + "---\n", "date"),
        (GOOD_HEAD.replace("'2021-01-02 03:04:05'", "2021-13-45") + "---\n", "YAML"),
        (GOOD_HEAD + "tags: {a: b}\n---\n", "tags"),
    ],
)
def test_bad_documents_raise_parse_error_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        linuxcn.parse(text)


def test_dates_are_shanghai_time() -> None:
    [item] = linuxcn.parse(GOOD_HEAD + "---\n正文\n")
    assert item.published_at == datetime(2021, 1, 2, 3, 4, 5, tzinfo=SHANGHAI)
    assert item.published_at.utcoffset() == timedelta(hours=8)


# --- sniffing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "---\nlayout: post\ntitle: 笔记\npermalink: /article-1-1.html\n---\n正文\n",
        "---\nlayout: post\ntitle: 笔记\ncategory: technology\n---\nfromurl: x\nislctt: true\n",
        "permalink: /article-1-1.html\nfromurl: ''\n",
        "# 标题\n\n正文\n",
        "",
    ],
)
def test_sniff_leaves_other_documents_alone(text: str) -> None:
    assert not linuxcn.sniff(text)


def test_sniff_finds_keys_after_a_long_comment_list() -> None:
    comments = "".join(f"- message: 评论 {n}\n  username: 用户\n" for n in range(2000))
    text = f"---\nauthor: 某人\ncomments_data:\n{comments}fromurl: ''\nislctt: false\ntitle: t\n---\n"
    assert linuxcn.sniff(text)


# --- the seeds -----------------------------------------------------------------------------------


def seed(seeds_dir: Path, prefix: str) -> str:
    [path] = seeds_dir.glob(f"{prefix}_*.txt")
    return read(path)


def test_seed_000_column_2021(seeds_dir: Path) -> None:
    text = seed(seeds_dir, "000")
    assert linuxcn.sniff(text)
    items = linuxcn.parse(text)
    assert len(items) == 3
    first = items[0]
    assert first.title == "字节跳动开源最新 GAN 压缩算法"
    assert first.url == "https://github.com/bytedance/OMGD"
    assert first.source == "github.com"
    assert first.commentary == "很高兴看到字节跳动也积极支持开源，并且能开源这样重要的技术。"
    assert first.published_at == datetime(2021, 8, 27, 16, 2, 18, tzinfo=SHANGHAI)
    assert first.image == "https://linux.cn/data/attachment/album/202108/27/160138faxqznmmbwlavplt.png"
    assert "https://paperswithcode.com/paper/online-multi-granularity-distillation-for-gan" in first.links
    assert "[" not in first.summary and "](" not in first.summary
    assert all(item.kind == "news" and item.category == "硬核观察" for item in items)
    assert all(item.commentary for item in items)


def test_seed_004_column_2023(seeds_dir: Path) -> None:
    text = seed(seeds_dir, "004")
    assert linuxcn.sniff(text)
    items = linuxcn.parse(text)
    assert len(items) == 3
    assert [item.source for item in items] == ["Mark Tech Post", "Tech Crunch", "彭博社"]
    first = items[0]
    assert first.title == "以众包的方式在家用电脑上运行大语言模型"
    assert first.url.startswith("https://www.marktechpost.com/2023/03/15/meet-petals-")
    assert first.commentary == "果然这种众包式的 AI 模型出现了，这可以有效避免 AI 被垄断。"
    assert "https://petals.ml/" in first.links
    assert items[1].url.startswith("https://techcrunch.com/2023/03/20/")
    assert items[2].url.startswith("https://www.bloomberg.com/news/articles/2023-03-20/")
    assert not any(item.commentary.startswith("老王点评") for item in items)
    assert all(item.tags == ["AI", "谷歌"] for item in items)


def test_other_seed_formats_are_not_claimed(seeds_dir: Path) -> None:
    for prefix in ("001", "002", "003"):
        assert not linuxcn.sniff(seed(seeds_dir, prefix)), prefix


# --- the real corpus -----------------------------------------------------------------------------

COLUMN_KEY = re.compile(r"^categor(?:y|ies):.*硬核观察", re.MULTILINE)
ECHO_HEADING = re.compile(r"^### +(?:#\d+ +)?(?:一句话)?回音\s*$")


def expected_column_count(text: str) -> int:
    """News ``###`` headings plus bullets under 回音 headings, counted line by line."""
    body = text[3:].split("\n---", 1)[1]
    count, in_echo = 0, False
    for line in body.replace("\r\n", "\n").split("\n"):
        if line.startswith("### "):
            in_echo = bool(ECHO_HEADING.match(line))
            count += not in_echo
        elif in_echo and re.match(r"[*-] ", line):
            count += 1
    return count


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path) -> list[tuple[Path, str, list[ParsedItem]]]:
    paths = sorted((corpus_dir / "linuxcn").rglob("*.md"))
    assert len(paths) >= 100
    return [(path, text, linuxcn.parse(text, path=str(path))) for path in paths for text in [read(path)]]


def test_corpus_is_claimed_by_sniff_and_jekyll_is_not(corpus_dir: Path, corpus) -> None:
    assert [path.name for path, text, _ in corpus if not linuxcn.sniff(text)] == []
    jekyll = [path for path in (corpus_dir / "jekyll").rglob("*") if path.is_file()]
    assert jekyll
    assert [path.name for path in jekyll if linuxcn.sniff(read(path))] == []


def test_corpus_columns_yield_one_item_per_story(corpus) -> None:
    columns = [(path, text, items) for path, text, items in corpus if COLUMN_KEY.search(text)]
    assert len(columns) >= 50
    problems = []
    for path, text, items in columns:
        expected = expected_column_count(text)
        if len(items) != expected:
            problems.append(f"{path.name}: {len(items)} items, expected {expected}")
        has_commentary = re.search(r"^> \S|老王点评", text, re.MULTILINE)
        for item in items:
            if not item.title or not item.url.startswith(("http://", "https://")):
                problems.append(f"{path.name}: item without title or primary link: {item}")
            if item.title in ("回音", "一句话回音") or item.title.startswith("#"):
                problems.append(f"{path.name}: bad title {item.title!r}")
            if has_commentary and item.kind == "news" and not item.commentary:
                problems.append(f"{path.name}: {item.title} has no commentary")
            if item.commentary.startswith("老王点评"):
                problems.append(f"{path.name}: prefix left in commentary of {item.title}")
            if item.kind == "news" and not (item.image or "").startswith("https://linux.cn/"):
                problems.append(f"{path.name}: {item.title} has no absolute image")
    assert problems == []


def test_corpus_articles_are_one_item_with_absolute_permalink(corpus) -> None:
    articles = [(path, text, items) for path, text, items in corpus if not COLUMN_KEY.search(text)]
    assert len(articles) >= 30
    problems = []
    for path, text, items in articles:
        fromurl = re.search(r"^fromurl: '?(http[^'\s]*)", text, re.MULTILINE)
        if len(items) != 1:
            problems.append(f"{path.name}: {len(items)} items")
            continue
        [item] = items
        if not re.fullmatch(rf"https://linux\.cn/article-{path.stem}-1\.html", item.url):
            problems.append(f"{path.name}: permalink {item.url}")
        if fromurl and fromurl.group(1) not in item.links:
            problems.append(f"{path.name}: fromurl missing from links")
        if item.kind != "article" or not item.title or not item.summary:
            problems.append(f"{path.name}: incomplete {item.kind} {item.title!r}")
    assert problems == []


def test_corpus_dates_are_shanghai_and_text_is_clean(corpus) -> None:
    for path, _, items in corpus:
        for item in items:
            assert item.published_at is not None and item.published_at.utcoffset() == timedelta(hours=8)
            for text in (item.title, item.summary, item.commentary):
                assert "<ruby" not in text and "<rt>" not in text and "\r" not in text, path.name
                assert "](" not in text and "**" not in text, path.name


def _assert_needed_keys_suffice(texts: list[str]) -> None:
    """The parser builds only the front matter keys it reads (reader comments are skipped): each
    document must read the same as from its whole front matter."""
    from digests.parsers._frontmatter import split_front_matter

    for text in texts:
        whole, _ = split_front_matter(text)
        needed, _ = split_front_matter(text, linuxcn._KEYS)
        assert "comments_data" not in needed
        assert linuxcn._read_document(needed) == linuxcn._read_document(whole)
        assert split_front_matter(text, frozenset(whole))[0] == whole  # every key asked: all the same


def test_reading_only_the_needed_front_matter_keys_changes_nothing() -> None:
    _assert_needed_keys_suffice(FIXTURE_TEXTS)


SCALARS = ["", "~", "null", "Null", "NULL", "yes", "No", "on", "OFF", "true", "False", "0", "-12", "+7", "0x1F",
           "0o17", "017", "1_000", "1:30", "3.14", "-.5", ".inf", "-.Inf", ".nan", "6.02e23", "1e3", "2021-02-03",
           "2021-13-45", "2021-02-03 04:05:06", "2021-02-03T04:05:06+08:00", "=", "<<", "硬核", "a: b", "'q'", "[1]"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SCALARS) | st.text(alphabet="0123456789.-+:eE_xoTZ ", max_size=12), max_size=6))
def test_the_lean_resolver_types_every_scalar_as_pyyaml_does(values: list[str]) -> None:
    from digests.parsers._frontmatter import split_front_matter

    lines = [f"k{n}: {value}" for n, value in enumerate(values)] + [f"s: [{', '.join(values)}]"]
    text = "---\n" + "\n".join(lines) + "\n---\n"
    try:
        whole, _ = split_front_matter(text)
    except ParseError:
        with pytest.raises(ParseError):
            split_front_matter(text, frozenset(f"k{n}" for n in range(len(values))) | {"s"})
        return
    assert split_front_matter(text, frozenset(whole))[0] == whole


FRONT_MATTER_LINES = ["a: 1", "b: x", "title: t", "title: 'q'", "tags: [x, 1]", "tags:\n- x\n- y", "id: 12",
                      "date: 2021-02-03", "date: 2021-13-45", "<<: {a: 2}", "c: &x {a: 3}", "<<: *x", "? [1]\n: 2",
                      "a: &y v", "b: *y", "--- !!set\n? a", "a: !!int x", "a: !!str 5", "c: [1, {a: 2}]",
                      "&z title: u", "a: null", "b: yes", "title: &r [*r]", "tags: &s {k: *s}", "!!map {a: 1}"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRONT_MATTER_LINES), max_size=8))
def test_the_keys_loader_builds_what_pyyaml_builds(lines: list[str]) -> None:
    """Merges, anchors, recursive values, sets, explicit tags: the asked keys as PyYAML has them."""
    from digests.parsers._frontmatter import split_front_matter

    text = "---\n" + "\n".join(lines) + "\n---\nbody"
    keys = frozenset({"a", "title", "tags", "date"})
    try:
        whole, _ = split_front_matter(text)
    except ParseError:
        return  # a broken value in a key not asked for is never built: no error is also right
    try:
        needed, _ = split_front_matter(text, keys)
    except ParseError as exc:
        pytest.fail(f"the whole front matter loads but the keys {sorted(keys)} fail: {exc}")
    # repr: a recursive value cannot be compared with ==
    assert repr(needed) == repr({key: value for key, value in whole.items() if key in keys})


def test_reading_only_the_needed_front_matter_keys_changes_nothing_in_the_corpus(corpus) -> None:
    texts = [text for _, text, _ in corpus]
    assert sum("\ncomments_data:" in text for text in texts) > 10
    _assert_needed_keys_suffice(texts)


# --- never anything but ParseError --------------------------------------------------------------

FIXTURE_TEXTS = [read(DATA / f"{case}.md") for case in CASES]
# fmt: off
FRAGMENTS = [
    "---", "\n", "\r\n", "### ", "### 回音\n* ", "### #3 ", "> ", "```", "~~~", "![](", "[", "](", ")", "<",
    ">", "<ruby>", "<rt>", "</ruby>", "<a href='", "*", "**", "_", "`", "\\", "消息来源：", "老王点评：",
    "?", "'", '"', ":", "- ", "  ", "\t", "date: 2021-13-45\n", "title: [1]\n", "tags: {a: 1}\n",
    "title: ''\n", "&amp;", "&#x0;", "\x00", "😀", "（插图：x）", "http://[::1", "javascript:x",
]
# fmt: on


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(FIXTURE_TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "duplicate", "replace_line"]))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(FRAGMENTS) | st.text(max_size=8)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 80)) :]
        elif op == "duplicate":
            end = pos + draw(st.integers(1, 200))
            text = text[:end] + text[pos:end] + text[end:]
        else:
            lines = text.split("\n")
            lines[pos % len(lines)] = draw(st.sampled_from(FRAGMENTS) | st.text(max_size=20))
            text = "\n".join(lines)
    return text


# fmt: off
MARKDOWN_LINES = st.sampled_from([
    "### 新闻标题", "### #2 另一条", "### 回音", "### 一句话回音", "* 一条后续。还有一句", "- 另一条！",
    "  * 嵌套", "1. 有序", "> ", "> 老王点评：点评。", "> **[消息来源：某站](https://example.org/a)**",
    "> ```", "```", "![](/data/a.jpg)", "正文 [链接](https://example.com/x) 和 `代码`。",
    "<ruby> 词 <rt> word </rt></ruby>", "*（插图：DA/x）*", "---", "#### 小标题", "", "",
]) | st.text(max_size=30)
# fmt: on


@st.composite
def generated_columns(draw: st.DrawFn) -> str:
    meta = {
        "title": draw(st.sampled_from(["硬核观察 #1 标题", "硬核观察 | 标题"])),
        draw(st.sampled_from(["category", "categories"])): draw(st.sampled_from(["硬核观察", ["硬核观察"]])),
        "permalink": "/article-1-1.html",
        "date": draw(st.sampled_from(["2021-08-27 16:02:18", "2024-01-01"])),
        "tags": draw(st.lists(st.text(st.characters(categories=["L", "N"]), max_size=5), max_size=3)),
    }
    body = "\n".join(draw(st.lists(MARKDOWN_LINES, max_size=40)))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return f"---\n{yaml.safe_dump(meta, allow_unicode=True)}---\n{body}\n".replace("\n", newline)


def assert_sound(items: list[ParsedItem]) -> None:
    for item in items:
        assert isinstance(item, ParsedItem)
        assert item.title and "\n" not in item.title
        assert item.url.startswith(("http://", "https://"))
    assert len({item.key for item in items}) == len(items)


def parse_or_parse_error(text: str) -> list[ParsedItem]:
    linuxcn.sniff(text)
    try:
        items = linuxcn.parse(text)
    except ParseError as exc:
        assert str(exc)  # every refusal says why
        return []
    assert_sound(items)
    return items


FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text() | st.text().map(lambda body: f"---\n{body}\n---\n{body}"))
def test_random_text_parses_or_raises_parse_error(text: str) -> None:
    parse_or_parse_error(text)


@FUZZ
@given(mutated_documents())
def test_mutated_documents_parse_or_raise_parse_error(text: str) -> None:
    parse_or_parse_error(text)


@FUZZ
@given(generated_columns())
def test_generated_columns_parse_into_items(text: str) -> None:
    assert linuxcn.sniff(text)
    items = linuxcn.parse(text)  # valid front matter: whatever the Markdown, no error
    assert items
    assert_sound(items)
    for item in items:
        assert item.kind in ("news", "echo", "article")
        assert item.published_at is not None and item.published_at.tzinfo is not None
