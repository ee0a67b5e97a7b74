"""OPML subscription lists: the feeds in one (every outline with an xmlUrl), and one written from ours."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from digests.errors import ParseError


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    title: str
    url: str


def read_opml(data: bytes) -> list[OpmlFeed]:
    """The feeds of an OPML file, in document order, each URL once; ParseError when it is not OPML."""
    # No entities, no network: an OPML file from anywhere must not make us read files or URLs.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"not a readable OPML file: {exc}") from None
    if not isinstance(root.tag, str) or etree.QName(root).localname.lower() != "opml":
        raise ParseError("not an OPML file: the root element is not <opml>")
    feeds: list[OpmlFeed] = []
    seen: set[str] = set()
    for outline in root.iter():
        if not isinstance(outline.tag, str) or etree.QName(outline).localname.lower() != "outline":
            continue
        attributes = {key.lower(): value for key, value in outline.attrib.items()}
        url = (attributes.get("xmlurl") or "").strip()
        if not url or url in seen:
            continue
        seen.add(url)
        title = (attributes.get("title") or attributes.get("text") or "").strip()
        feeds.append(OpmlFeed(" ".join(title.split()), url))
    return feeds


def write_opml(feeds: Iterable[OpmlFeed], *, title: str, now: datetime) -> str:
    """An OPML 2.0 document listing these feeds."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now)
    body = etree.SubElement(root, "body")
    for feed in feeds:
        etree.SubElement(body, "outline", type="rss", text=feed.title, title=feed.title, xmlUrl=feed.url)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True).decode("utf-8")
