"""The Jekyll, newsletter, RSS-reader JSON and RSS/Atom parsers: golden files, seeds, sniffing, fuzz."""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digests.errors import ParseError
from digests.items import ParsedItem
from digests.parsers import detect_format, feed, jekyll, newsletter, rssjson
from digests.parsers._markdown import markdown_inline_text
from digests.parsers._text import SHANGHAI, clip, html_text

FORMATS = Path(__file__).resolve().parent / "data" / "formats"
MINE: tuple[ModuleType, ...] = (jekyll, newsletter, rssjson, feed)
CASES: dict[str, ModuleType] = {
    "jekyll_links.md": jekyll,
    "2014-3-9-essay.markdown": jekyll,
    "newsletter.md": newsletter,
    "rssjson.json": rssjson,
    "feed_rss.xml": feed,
    "feed_atom.xml": feed,
}
SEED_FORMATS = {"001_07f52f57dc0f84ed.txt": jekyll, "002_193ebcd875e9eeb5.txt": newsletter,
                "003_8418618ecb647767.txt": rssjson}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fixture_text(name: str) -> str:
    return (FORMATS / name).read_text(encoding="utf-8")


def parse_fixture(name: str) -> list[ParsedItem]:
    return CASES[name].parse(fixture_text(name), path=f"tests/data/formats/{name}")


def as_record(item: ParsedItem) -> dict[str, object]:
    record = dataclasses.asdict(item)
    record["published_at"] = item.published_at.isoformat() if item.published_at else None
    return record


def assert_well_formed(items: list[ParsedItem]) -> None:
    """The contract every parser keeps, whatever the input."""
    assert len({item.key for item in items}) == len(items)
    for item in items:
        assert item.title and item.title == item.title.strip()
        assert item.url.startswith(("http://", "https://"))
        assert item.links[0] == item.url
        assert all(link.startswith(("http://", "https://")) for link in item.links)
        assert item.published_at is None or item.published_at.utcoffset() is not None
        assert item.image is None or item.image.startswith(("http://", "https://"))


# --- golden files -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_matches_its_golden_file(name: str) -> None:
    """Every field of every item; after a deliberate change, rewrite with UPDATE_GOLDEN=1 and review."""
    golden = FORMATS / f"{name}.items.json"
    items = parse_fixture(name)
    assert_well_formed(items)
    records = [as_record(item) for item in items]
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(records, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert records == json.loads(golden.read_text(encoding="utf-8"))


def test_jekyll_pairs_take_prose_above_and_skip_code_blocks() -> None:
    items = parse_fixture("jekyll_links.md")
    assert [item.title for item in items] == [
        "LLVM 十五年：从学术项目到工业标准", "MLIR 入门：多层中间表示", "LLVM 项目主仓库",
        "工具箱合集", "LLVM 十五年（重复链接）"]
    assert items[1].summary == "这一节收集的都是编译器相关的文章。\n下面两篇讲的是 MLIR，值得一读。"
    assert items[1].links == ["https://zhuanlan.zhihu.com/p/10000001", "https://mlir.llvm.org/"]
    assert items[2].url == "https://github.com/llvm/llvm-project"  # link.zhihu.com redirect unwrapped
    assert items[0].published_at == datetime(2019, 6, 2, 21, 30, tzinfo=SHANGHAI)
    assert items[0].tags == ["编译器", "compiler", "周报"] and items[0].category == "toolchain"
    assert items[0].key != items[4].key  # the same URL twice still gives two distinct keys
    assert not any("example.com" in item.url for item in items)


def test_jekyll_post_without_pairs_yields_nothing_and_dates_from_file_name() -> None:
    text = fixture_text("2014-3-9-essay.markdown")
    assert jekyll.parse(text, path="_posts/2014-3-9-essay.markdown") == []
    with_pair = text + "\n# 链接\n\nhttps://example.com/a\n\n一个标题\n"
    [item] = jekyll.parse(with_pair, path="_posts/2014-3-9-essay.markdown")
    assert item.published_at == datetime(2014, 3, 9, tzinfo=SHANGHAI)
    assert jekyll.parse(with_pair, path="")[0].published_at is None


def test_newsletter_titles_keep_pipes_and_brackets_inside_the_link() -> None:
    items = parse_fixture("newsletter.md")
    assert items[0].title == "龙芯发布新一代处理器 | 性能提升 [30%]"
    assert items[0].source == "量子位"
    assert items[0].links == ["https://mp.weixin.qq.com/s/Loongson3A6000xyz", "https://www.loongson.cn/",
                              "https://www.example.com/bench?id=42"]
    assert items[1].image == "https://img.example.com/2023/rust.jpg"
    assert items[2].url == "https://example.org/db/releases/2.0_(beta)"
    assert [(item.kind, item.source) for item in items[3:]] == [
        ("link", "机器之心"), ("link", "zhuanlan.zhihu.com")]


def test_rssjson_drops_scripts_styles_and_tracking_pixels() -> None:
    first, second = parse_fixture("rssjson.json")
    assert "不应出现" not in first.summary and "color: red" not in first.summary
    assert first.title == "国产大模型开源：70 亿参数 & 可商用"
    assert first.image == "http://img.example.cn/cover1.jpg"
    assert "http://mp.weixin.qq.com/s?__biz=MzA1&mid=1&idx=1&sn=abc#rd" in first.links
    assert first.published_at == datetime(2023, 7, 1, 1, 30, tzinfo=UTC)
    assert first.published_at.utcoffset() == timedelta(hours=8)
    assert second.image == "https://img.example.cn/second.jpg"  # pixel.wp.com skipped
    assert second.published_at == datetime(2023, 7, 1, 1, 30, tzinfo=UTC)  # epoch-ms fallback


def test_feed_keeps_the_feeds_utc_offset_and_resolves_relative_links() -> None:
    debian, rust = parse_fixture("feed_rss.xml")
    assert debian.published_at is not None and debian.published_at.utcoffset() == timedelta(hours=8)
    assert debian.tags == ["发行版", "Debian"] and debian.image == "https://img.example.cn/debian12.png"
    assert debian.source == "开源中国 & 社区新闻" and "alert" not in debian.summary
    assert rust.url == "https://news.example.cn/2023/06/rust-170"
    assert rust.title == "Rust 1.70 发布：稀疏协议成为默认"
    ebpf, _ = parse_fixture("feed_atom.xml")
    assert ebpf.title == "用 eBPF 观测内核" and ebpf.author == "老王"
    assert ebpf.tags == ["内核", "可观测性"] and ebpf.image == "https://img.example.cn/ebpf-cover.jpg"


# --- errors -----------------------------------------------------------------------------------

def test_rssjson_reports_where_the_json_breaks() -> None:
    with pytest.raises(ParseError, match=r"^invalid JSON at line 2 column 1: "):
        rssjson.parse('{"toInsertArticleList": [\n')
    with pytest.raises(ParseError, match="no toInsertArticleList list"):
        rssjson.parse('{"feed": {}}')


def test_feed_without_entries_reports_feedparsers_reason() -> None:
    with pytest.raises(ParseError, match="^not a readable RSS/Atom feed: .+"):
        feed.parse('<?xml version="1.0"?><rss version="2.0"><channel><title>坏的</ti')
    assert feed.parse('<rss version="2.0"><channel><title>空的</title></channel></rss>') == []


def test_jekyll_with_unclosed_front_matter_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        jekyll.parse("---\nlayout: post\ntitle: x\n")


# --- seeds and corpus -------------------------------------------------------------------------

def test_seed_001_jekyll_link_list(seeds_dir: Path) -> None:
    items = jekyll.parse((seeds_dir / "001_07f52f57dc0f84ed.txt").read_text(encoding="utf-8"),
                         path=str(seeds_dir / "001_07f52f57dc0f84ed.txt"))
    assert_well_formed(items)
    assert len(items) == 35
    sections = Counter(item.tags[0] for item in items)
    assert sections["模型压缩与加速进阶"] == 31
    assert sum(n for tag, n in sections.items() if tag.startswith("两弹一星")) == 4
    assert items[0].title == "谷歌大脑用强化学习为移动设备量身定做最好最快的CNN模型"
    assert items[0].url == "https://mp.weixin.qq.com/s/p_qdKcQwQ8y_JUw3gQUEnA"
    assert items[0].published_at is None and items[0].category == "DL acceleration"
    assert items[31].summary.startswith("张为申1931年毕业于清华大学化学系")
    assert items[32].summary == ""  # nothing between the previous pair and this one
    assert items[33].source == "zhihu.com"


def test_seed_002_newsletter(seeds_dir: Path) -> None:
    items = newsletter.parse((seeds_dir / "002_193ebcd875e9eeb5.txt").read_text(encoding="utf-8"))
    assert_well_formed(items)
    assert len(items) == 15
    assert Counter(item.kind for item in items) == {"news": 8, "link": 7}
    assert items[1].title == "阿里达摩院提出：首个精度无损的INT8加速训练方案 | AAAI 2021"
    assert items[1].url == "https://mp.weixin.qq.com/s/wjwqHPKhYTH3rzwE8GniSg"
    assert items[1].source == "CVer" and items[1].links[1] == "https://arxiv.org/abs/2102.04782"
    assert items[0].source == "量子位" and items[0].image.endswith("/20210409164016.png")
    assert items[0].published_at == datetime(2021, 4, 9, tzinfo=SHANGHAI)
    assert items[14].title == "使用这个技术，ResNet-50最高可以获得16%的加速！" and items[14].source == "CVer"


def test_seed_003_rss_reader_record(seeds_dir: Path) -> None:
    [item] = rssjson.parse((seeds_dir / "003_8418618ecb647767.txt").read_text(encoding="utf-8"))
    assert_well_formed([item])
    assert item.title == "OpenAI新论文称打败GAN达到SOTA！这个霸气扩散模型是噱头还是干货？"
    assert item.url.startswith("http://weixin.sogou.com/weixin?type=2&query=")
    assert item.source == "新智元"
    assert item.published_at == datetime(2021, 5, 18, 4, 56, tzinfo=UTC)
    assert item.image is not None and item.image.startswith("http://content.sov5.cn/mmbiz_jpg/")
    assert "【新智元导读】近日，OpenAI的两个研究员发表了一篇新文章" in item.summary
    assert "<" not in item.summary and len(item.summary) <= 2000
    assert "https://arxiv.org/pdf/2102.09672.pdf" in item.links


def test_seed_urls_do_not_repeat(seeds_dir: Path) -> None:
    urls = [item.url for name, module in SEED_FORMATS.items()
            for item in module.parse((seeds_dir / name).read_text(encoding="utf-8"))]
    assert len(urls) == 35 + 15 + 1 == len(set(urls))


def test_corpus_jekyll_posts_parse(corpus_dir: Path) -> None:
    paths = sorted((corpus_dir / "jekyll").glob("*.m*d*"))
    assert paths
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert jekyll.sniff(text), path.name
        items = jekyll.parse(text, path=str(path))
        assert_well_formed(items)
        assert all(item.published_at is not None for item in items), path.name
    assert jekyll.parse((corpus_dir / "jekyll" / "2016-2-2-Gordon.markdown").read_text(encoding="utf-8"),
                        path="2016-2-2-Gordon.markdown") == []


# --- sniffing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_each_fixture_is_claimed_by_its_own_sniffer_only(name: str) -> None:
    text = fixture_text(name)
    assert [module.NAME for module in MINE if module.sniff(text)] == [CASES[name].NAME]
    assert detect_format(text) is CASES[name]


def test_seeds_are_detected_as_their_formats(seeds_dir: Path) -> None:
    for name, module in SEED_FORMATS.items():
        text = (seeds_dir / name).read_text(encoding="utf-8")
        assert [m.NAME for m in MINE if m.sniff(text)] == [module.NAME], name
        assert detect_format(text) is module, name
    for name in ("000_604923213818952f.txt", "004_49ed1f458255c727.txt"):  # linux.cn articles
        assert not any(m.sniff((seeds_dir / name).read_text(encoding="utf-8")) for m in MINE), name


@pytest.mark.parametrize("text, expected", [
    ("\ufeff  <?xml version='1.0'?>\n<!-- c -->\n<feed xmlns='http://www.w3.org/2005/Atom'>", "feed"),
    ("<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>", "feed"),
    ("<?xml version='1.0'?><html><body>not a feed</body></html>", None),
    ('  {"toInsertArticleList": []}', "rssjson"),
    ('{"items": []}', None),
    ("---\ntitle: 无 layout 也算\n---\n正文", "jekyll"),
    ("---\npermalink: /article-1-1.html\nfromurl: x\n---\n", None),
    ("---\nlayout: post\n", None),
    ("# 普通标题\n\n一段普通的 Markdown，没有目录标记。", None),
    ("正文\n\n## [1. 标题](https://example.com/a) | 来源\n", "newsletter"),
])
def test_sniffers_on_edge_cases(text: str, expected: str | None) -> None:
    assert [m.NAME for m in MINE if m.sniff(text)] == ([expected] if expected else [])


# --- text helpers -----------------------------------------------------------------------------

def test_markdown_inline_text_strips_markup_but_not_identifiers() -> None:
    assert markdown_inline_text("**deepx_core** 的 [仓库](https://x.org/a_(b)) `pip` <b>新</b> &amp; ~~旧~~") \
        == "deepx_core 的 仓库 pip 新 & 旧"


def test_clip_cuts_at_a_sentence_end() -> None:
    text = "第一句。" * 300
    assert clip(text, 2000).endswith("。") and len(clip(text, 2000)) <= 2000
    assert clip("a" * 3000, 100) == "a" * 99 + "…"


# --- fuzz -------------------------------------------------------------------------------------

MARKUP = st.sampled_from([
    "\n", "\n\n", "---\n", "# ", "## ", "[", "]", "(", ")", "](", "https://example.com/x", "http://",
    "|", "｜", "> ", "- ", "* toc\n", "{:toc}", "[TOC]", "```\n", "~~~", "$$", "{% highlight c %}",
    "{% endhighlight %}", "![](", "<b>", "</b>", "<script>", "&amp;", "\\", "*", "**", "1. ",
    "标题", "新闻。", "：", "layout: post\n", "date: 2020-13-45\n", "date: 2020-02-02 10:00 +0800\n",
    "category: [a, b]\n", "\r\n", "\t", "\x00", "\ud800",
])
MARKDOWNISH = st.lists(MARKUP | st.text(max_size=8), max_size=60).map("".join)


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> str:
    """One of ``texts`` with a few random cuts, duplications and insertions."""
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        a = draw(st.integers(0, len(text)))
        b = draw(st.integers(a, min(len(text), a + 200)))
        operation = draw(st.sampled_from(["delete", "duplicate", "insert", "truncate"]))
        if operation == "delete":
            text = text[:a] + text[b:]
        elif operation == "duplicate":
            text = text[:b] + text[a:b] + text[b:]
        elif operation == "insert":
            text = text[:a] + draw(MARKUP | st.text(max_size=10)) + text[a:]
        else:
            text = text[:a]
    return text


def only_parse_errors(module: ModuleType, text: str) -> None:
    try:
        items = module.parse(text, path="2020-1-2-post.md")
    except ParseError as exc:
        assert str(exc)
        return
    assert_well_formed(items)


@FUZZ
@given(text=st.text(max_size=300) | MARKDOWNISH)
def test_random_text_raises_only_parse_error(text: str) -> None:
    for module in MINE:
        module.sniff(text)
        only_parse_errors(module, text)


@FUZZ
@given(data=st.data())
def test_mutated_fixtures_raise_only_parse_error(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(CASES)))
    text = data.draw(mutated([fixture_text(name)]))
    for module in MINE:
        module.sniff(text)
    only_parse_errors(CASES[name], text)
    only_parse_errors(newsletter if CASES[name] is not newsletter else jekyll, text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_seeds_raise_only_parse_error(seeds_dir: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(SEED_FORMATS)))
    text = data.draw(mutated([(seeds_dir / name).read_text(encoding="utf-8")]))
    only_parse_errors(SEED_FORMATS[name], text)


@FUZZ
@given(fragment=st.lists(st.sampled_from([
    "<p>", "</p>", "<a href='https://e.com/a'>", "</a>", "<img src='http://t.com/p.gif' width=1>",
    "<script>x()</script>", "<style>p{}</style>", "<br>", "<li>", "<!--", "-->", "&nbsp;", "<b>",
    "<svg><p>", "文字", " ", "\n"]) | st.text(max_size=5), max_size=40).map("".join))
def test_html_text_never_shows_scripts_or_markup(fragment: str) -> None:
    result = html_text(fragment)
    assert "x()" not in result.text or "x()" in fragment.replace("<script>x()</script>", "")
    assert all(href.startswith("https://") for href, _ in result.anchors)
    assert "http://t.com/p.gif" not in result.images


def test_html_text_reads_through_styled_wrappers() -> None:
    # WeChat-style markup: text, links, images and trackers inside layers of styled wrappers.
    fragment = (
        '<section style="max-width:100%"><p class="a b"><span style="color:red">谷歌</span>'
        '<strong><span> 发布 </span></strong><font size="2">新芯片</font></p>'
        '<p><span><a href="https://example.com/x" style="c"><span>原文</span> 链接</a></span></p>'
        '<span><img data-src="https://img.example.com/a.png" class="rich"></span>'
        '<span><img src="https://img.example.com/pixel.gif" width="1"></span>'
        '<span><script>track()</script>后记</span><ul><li><em>一</em></li><li><b>二</b></li></ul></section>'
    )
    result = html_text(fragment)
    assert result.text == "谷歌 发布 新芯片\n原文 链接\n后记\n• 一\n• 二"
    assert result.anchors == [("https://example.com/x", "原文 链接")]
    assert result.images == ["https://img.example.com/a.png"]
