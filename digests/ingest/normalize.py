"""Normalisation: canonical URLs, fingerprints for cross-source dedupe, the stored form of text."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from digests.items import ParsedItem

# Query parameters known to identify a visit, never a page: dropped from the dedupe key. Every
# other parameter is kept, even one that is often noise (ref, source, from, lang, version,
# feature): on some site it picks the page (kernel.org/doc?version=6.1, gitlab ?ref=main), and
# two pages merged into one item lose a story, while one story kept twice is only a duplicate.
# - utm_*: Google Analytics campaign tags, used everywhere;
# - click ids of ad and mail networks: fbclid (Facebook), gclid (Google Ads), yclid (Yandex),
#   msclkid (Microsoft Ads), mc_cid and mc_eid (Mailchimp), _hsenc and _hsmi (HubSpot);
# - spm (Alibaba's position tracking), ref_src (Twitter embeds), isappinstalled (share sheets).
_TRACKING = re.compile(
    r"^(utm_.*|fbclid|gclid|yclid|msclkid|mc_cid|mc_eid|_hsenc|_hsmi|spm|ref_src|isappinstalled)$",
    re.IGNORECASE,
)
# On mp.weixin.qq.com/s?__biz=...&mid=...&idx=...&sn=... those four name the article; WeChat's
# share and client parameters are added to every shared link and are dropped there only.
_WECHAT_TRACKING = re.compile(
    r"^(chksm|scene|srcid|sharer_.*|share_.*|mpshare|clicktime|enterid|ascene|devicetype|version|lang|"
    r"nettype|abtest_cookie|pass_ticket|wx_header|from|exportkey)$",
    re.IGNORECASE,
)
COLUMN_CATEGORY = "硬核观察"
# A query of name=value pairs that parse_qsl and urlencode would hand back unchanged: unreserved
# characters only, at most one "=" per pair.
_PLAIN_QUERY = re.compile(r"(?:[A-Za-z0-9_.~-]*(?:=[A-Za-z0-9_.~-]*)?(?:&|\Z))*")
_WECHAT_ARTICLE = re.compile(r"^/s/([A-Za-z0-9_\-]+)/?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200e\u200f\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_LINE_EDGES = re.compile(r"[^\S\n]*\n[^\S\n]*")  # the whitespace str.strip() would take off each line
# linux.cn writes "此前 [报道](url) 的": once the link is text, those spaces sit between two
# Chinese characters, where Chinese never has them.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
# (?= ) first: re then skips to the next space instead of testing the lookbehind everywhere.
_SPACE_BETWEEN_CJK = re.compile(f"(?= )(?<=[{_CJK}]) +(?=[{_CJK}])")


def canonical_url(url: str) -> str:
    """The URL as a dedupe key: scheme-less, host lower-cased, tracking-only parameters dropped.

    A WeChat article ``mp.weixin.qq.com/s/<id>`` is its own key whatever follows it.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return url.lower()
    if host.startswith("www."):
        host = host[4:]
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    path = parts.path or "/"
    wechat = host == "mp.weixin.qq.com"
    if wechat:
        match = _WECHAT_ARTICLE.match(path)
        if match:
            return f"mp.weixin.qq.com/s/{match.group(1)}"
    if len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit(("", host, path, _kept_query(parts.query, wechat), "")).lstrip("/")


def _kept_query(query: str, wechat: bool) -> str:
    """The query without tracking-only parameters, sorted, in urlencode's form."""
    def kept(name: str) -> bool:
        return not (_TRACKING.match(name) or (wechat and _WECHAT_TRACKING.match(name)))

    if _PLAIN_QUERY.fullmatch(query):  # nothing to unquote or quote: parse_qsl + urlencode by hand
        plain = sorted(piece.partition("=")[::2] for piece in query.split("&") if piece)
        return "&".join(f"{k}={v}" for k, v in plain if kept(k))
    return urlencode(sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if kept(k)))


def fingerprint(item: ParsedItem) -> str:
    """The cross-source identity of an item: its canonical URL (follow-ups kept apart)."""
    key = canonical_url(item.url)
    if item.kind == "echo":
        key += "|echo|" + item.title
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def fingerprinted_items(items: list[ParsedItem]) -> list[tuple[str, ParsedItem]]:
    """(fingerprint, item) for the first item of each key; items of one document that share a URL
    stay distinct items."""
    firsts: dict[str, tuple[str, ParsedItem]] = {}
    used: set[str] = set()
    for item in items:
        fp = fingerprint(item)
        if fp in used:
            fp = hashlib.sha1(f"{fp}|{item.key}".encode()).hexdigest()
        used.add(fp)
        firsts.setdefault(item.key, (fp, item))
    return list(firsts.values())


def normalise_text(text: str) -> str:
    """Text as stored: NFC, no control or zero-width characters, spaces folded, lines trimmed."""
    # Each regex runs only when its cheap `in` test says it could change something: an ingest
    # normalises every field of every item, and most fields are already in their stored form.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    if not text.isprintable():  # every character _CONTROL takes is unprintable (Cc or Cf)
        text = _CONTROL.sub("", text)
    if "  " in text or "\t" in text or "\u00a0" in text or "\u3000" in text:
        text = _SPACES.sub(" ", text)
    if " " in text:
        text = _SPACE_BETWEEN_CJK.sub("", text)
    if "\n" in text:
        text = _LINE_EDGES.sub("\n", text)
        if "\n\n\n" in text:
            text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def normalise_line(text: str) -> str:
    """normalise_text for a one-line field: newlines become spaces."""
    return " ".join(normalise_text(text).split("\n")).strip()


def normalise_item(item: ParsedItem) -> ParsedItem:
    """The item with clean text fields, deduplicated links and tags, the primary link first."""
    item.title = normalise_line(item.title)[:1000]
    item.summary = normalise_text(item.summary)
    item.commentary = normalise_text(item.commentary)
    item.source = normalise_line(item.source)[:256]
    item.author = normalise_line(item.author)[:256]
    item.category = normalise_line(item.category)[:128]
    item.url = item.url.strip()
    links: list[str] = []
    for link in [item.url, *item.links]:
        link = link.strip()
        if link and link not in links:
            links.append(link)
    item.links = links
    tags: list[str] = []
    for tag in item.tags:
        tag = normalise_line(str(tag))
        if tag and tag not in tags:
            tags.append(tag)
    if item.category == COLUMN_CATEGORY and tags:
        # a 硬核观察 post's tags describe the whole post: keep those this item is about
        text = f"{item.title}\n{item.summary}".lower()
        tags = [tag for tag in tags if tag.lower() in text]
    item.tags = tags
    return item
