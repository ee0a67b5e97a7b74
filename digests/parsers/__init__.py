"""Document parsers, one module per format; each is pure: text in, items out.

Every format module exposes:

- ``NAME``: the format's name as stored with the document (``"linuxcn"``, ``"jekyll"`` ...);
- ``sniff(text: str) -> bool``: True when the text looks like this format (content only, never
  the file name);
- ``parse(text: str, *, path: str = "") -> list[ParsedItem]``: the items, or ``ParseError``
  with a reason a user can act on. ``path`` is only a hint (Jekyll dates in file names).

What several formats share lives in the underscored modules: ``_frontmatter`` (YAML front
matter), ``_markdown`` (Markdown line regexes, inline Markdown to text), ``_links`` (http(s)
URLs, hosts, redirects, unique), ``_text`` (clean lines, clipping, HTML to text, keys, dates).
"""

from __future__ import annotations

from types import ModuleType

from digests.errors import ParseError, UnknownFormatError
from digests.items import ParsedItem
from digests.parsers import feed, jekyll, jsonfeed, linuxcn, newsletter, rssjson
from digests.parsers._frontmatter import UNCLOSED, front_matter_bounds, has_front_matter

# Order matters: the most specific sniffers first (linux.cn before generic Jekyll front matter).
FORMATS: tuple[ModuleType, ...] = (rssjson, jsonfeed, feed, linuxcn, jekyll, newsletter)


def detect_format(text: str) -> ModuleType:
    """The parser module for this text; ParseError saying what is wrong when there is none."""
    if not text or text.isspace():
        raise ParseError("empty file" if not text else "empty file (only whitespace)")
    for module in FORMATS:
        if module.sniff(text):
            return module
    if has_front_matter(text) and front_matter_bounds(text) is None:
        raise ParseError(UNCLOSED)  # cut short: too little is left to tell which format it was
    raise UnknownFormatError("unknown format: not a linux.cn article, Jekyll post, newsletter, "
                             "RSS-reader JSON record, JSON Feed or RSS/Atom feed")


def parse_document(text: str, *, path: str = "") -> tuple[str, list[ParsedItem]]:
    """Detect the format of ``text`` and parse it: (format name, items)."""
    module = detect_format(text)
    return module.NAME, module.parse(text, path=path)
