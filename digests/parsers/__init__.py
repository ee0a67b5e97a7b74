"""Document parsers, one module per format; each is pure: text in, items out.

Every format module exposes:

- ``NAME``: the format's name as stored with the document (``"linuxcn"``, ``"jekyll"`` ...);
- ``sniff(text: str) -> bool``: True when the text looks like this format (content only, never
  the file name);
- ``parse(text: str, *, path: str = "") -> list[ParsedItem]``: the items, or ``ParseError``
  with a reason a user can act on. ``path`` is only a hint (Jekyll dates in file names).
"""

from __future__ import annotations

from types import ModuleType

from digests.errors import UnknownFormatError
from digests.items import ParsedItem
from digests.parsers import feed, jekyll, jsonfeed, linuxcn, newsletter, rssjson

# Order matters: the most specific sniffers first (linux.cn before generic Jekyll front matter).
FORMATS: tuple[ModuleType, ...] = (rssjson, jsonfeed, feed, linuxcn, jekyll, newsletter)


def detect_format(text: str) -> ModuleType:
    """The parser module for this text, or UnknownFormatError."""
    for module in FORMATS:
        if module.sniff(text):
            return module
    raise UnknownFormatError("unknown format: not a linux.cn article, Jekyll post, newsletter, "
                             "RSS-reader JSON record, JSON Feed or RSS/Atom feed")


def parse_document(text: str, *, path: str = "") -> tuple[str, list[ParsedItem]]:
    """Detect the format of ``text`` and parse it: (format name, items)."""
    module = detect_format(text)
    return module.NAME, module.parse(text, path=path)
