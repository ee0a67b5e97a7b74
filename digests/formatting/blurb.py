"""Item -> Telegram HTML: single posts, 硬核观察 digests and photo captions, always within Telegram's limits.

Pure: text in, ``Message`` out. The only I/O is reading template files when a ``BlurbFormatter`` is
built, so a bad template stops start-up instead of a publish. Telegram's parser itself (TDLib) is
used only by the tests, as an oracle for ``visible_length`` and the markup produced here.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache, partial
from itertools import accumulate
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from digests.errors import ConfigError, TemplateError

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
UNTITLED = "（无标题）"
ELLIPSIS = "…"
DEFAULT_COMMENTARY_LABEL = "老王点评"
TEMPLATE_DIR = Path(__file__).with_name("templates")
COMMENTARY_POLICIES = ("publish", "hold")


class BlurbItem(Protocol):
    """What the formatter reads from an item (``ParsedItem`` and the stored model both fit).

    ``id: int | None`` is read with ``getattr`` as well, because a ``ParsedItem`` has none yet.
    """

    @property
    def title(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def commentary(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def image(self) -> str | None: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def category(self) -> str: ...
    @property
    def published_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Message:
    """One Telegram post: HTML text (or a caption when ``photo`` is set) and its visible length.

    ``length`` counts UTF-16 code units of the text Telegram shows (tags removed, entities decoded,
    ends trimmed), the unit of Telegram's 4096/1024 limits.
    """

    html: str
    photo: str | None
    item_ids: list[int | None]
    length: int

    @property
    def limit(self) -> int:
        return CAPTION_LIMIT if self.photo else TEXT_LIMIT


@dataclass(frozen=True, slots=True)
class BlurbConfig:
    """Layout options of one channel; template overrides are paths to Jinja2 files."""

    summary_length: int = 300
    digest_summary_length: int | None = None  # None: the same as summary_length
    commentary_label: str = DEFAULT_COMMENTARY_LABEL
    source_label: str = "消息来源"
    digest_title: str = "硬核观察"
    hashtags: bool = True
    max_hashtags: int = 5
    single_template: str | Path | None = None
    digest_template: str | Path | None = None
    photo_template: str | Path | None = None

    @classmethod
    def from_channel(cls, channel: Any) -> BlurbConfig:
        """The blurb options of a channel config (``digests.config.ChannelConfig`` or alike)."""
        defaults = cls()
        templates = getattr(channel, "templates", None)
        return cls(
            summary_length=getattr(channel, "summary_length", defaults.summary_length),
            commentary_label=getattr(channel, "commentary_label", defaults.commentary_label),
            digest_title=getattr(channel, "digest_title", defaults.digest_title),
            hashtags=getattr(channel, "hashtags", defaults.hashtags),
            single_template=getattr(templates, "single", None),
            digest_template=getattr(templates, "digest", None),
            photo_template=getattr(templates, "photo", None),
        )


@dataclass(slots=True)
class Entry:
    """What a template sees of one item: clean plain text (autoescape escapes it on output)."""

    index: int
    id: int | None
    title: str
    summary: str
    url: str | None
    source: str
    commentary: str
    hashtags: list[str]
    image: str | None
    category: str
    tags: list[str]
    published_at: datetime | None


# ---------------------------------------------------------------------------------------------
# Text cleaning and measuring

# Characters Telegram drops or turns into spaces when a message is sent (TDLib fix_formatted_text):
# C0 controls except "\n", and U+2028..U+202E, U+030A, U+0333, U+033F. We drop them first so the
# text we measure is the text Telegram shows. C1 controls and DEL are invisible junk as well.
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028-\u202e\u030a\u0333\u033f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def telegram_safe(text: str) -> str:
    """Text Telegram keeps as it is: valid UTF-8, no control characters, "\\n" line ends."""
    if _SURROGATE.search(text):
        # Lone surrogates (bad decoding upstream) are not UTF-8: Telegram would reject the message.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _UNWANTED.sub("", text)


def clean_text(text: str | None) -> str:
    """Source text made ``telegram_safe`` and NFC (so "e" + U+0301 is one character, as in print)."""
    if not text:
        return ""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return telegram_safe(text)


def clean_block(text: str | None) -> str:
    """Multi-line text: clean, spaces collapsed, lines trimmed, at most one blank line in a row."""
    text = _INLINE_SPACE.sub(" ", clean_text(text))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def clean_line(text: str | None) -> str:
    """One line: clean, every run of whitespace (newlines included) made one space."""
    return " ".join(clean_text(text).split())


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# ---------------------------------------------------------------------------------------------
# Telegram HTML: tokens, visible length, validation

ALLOWED_TAGS = frozenset({"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                          "tg-spoiler", "code", "pre", "blockquote", "tg-emoji"})
_TAG = re.compile(
    r"""<(?P<end>/)?(?P<name>[A-Za-z][A-Za-z0-9-]*)"""
    r"""(?P<attrs>(?:\s+[A-Za-z][A-Za-z0-9_-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>]+))?)*)\s*>"""
)
_ATTR = re.compile(r"""([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>]+)))?""")
# Telegram decodes only these named entities (case-sensitive, ";" optional) and numeric ones.
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)(?![A-Za-z])|#[xX]([0-9A-Fa-f]+)|#([0-9]+));?")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_entity(match: re.Match[str]) -> str:
    name, hexa, dec = match.groups()
    if name:
        return _NAMED[name]
    code = int(hexa, 16) if hexa else int(dec)
    if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return chr(code)
    return match.group(0)


def unescape_telegram(text: str) -> str:
    """Decode HTML entities the way Telegram does (unknown named entities stay as they are)."""
    return _ENTITY.sub(_decode_entity, text) if "&" in text else text


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of Telegram HTML: kind "text" (decoded), "start" or "end"."""

    kind: str
    text: str = ""
    name: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


def tokenize_telegram_html(markup: str, *, strict: bool = True) -> Iterator[Token]:
    """Tokens of Telegram HTML; a "<" that opens no tag raises ValueError (Telegram rejects it),
    or is taken as text when not ``strict``."""
    pos = 0
    while pos < len(markup):
        lt = markup.find("<", pos)
        if lt < 0:
            yield Token("text", unescape_telegram(markup[pos:]))
            return
        if lt > pos:
            yield Token("text", unescape_telegram(markup[pos:lt]))
        match = _TAG.match(markup, lt)
        if not match:
            if strict:
                raise ValueError(f"unescaped '<' or malformed tag at offset {lt}")
            yield Token("text", "<")
            pos = lt + 1
            continue
        name = match.group("name").lower()
        if match.group("end"):
            yield Token("end", name=name)
        else:
            attrs = {m.group(1).lower(): unescape_telegram(m.group(2) or m.group(3) or m.group(4) or "")
                     for m in _ATTR.finditer(match.group("attrs"))}
            yield Token("start", name=name, attrs=attrs)
        pos = match.end()


def check_telegram_html(markup: str) -> str | None:
    """Why Telegram would reject this HTML (unknown tag, unbalanced nesting ...), or None."""
    stack: list[str] = []
    try:
        for token in tokenize_telegram_html(markup):
            if token.kind == "start":
                if token.name not in ALLOWED_TAGS:
                    return f"unsupported tag <{token.name}>"
                if token.name == "span" and token.attrs.get("class") != "tg-spoiler":
                    return '<span> needs class="tg-spoiler"'
                stack.append(token.name)
            elif token.kind == "end":
                if not stack:
                    return f"</{token.name}> closes nothing"
                if stack[-1] != token.name:
                    return f"</{token.name}> found where </{stack[-1]}> was expected"
                stack.pop()
    except ValueError as exc:
        return str(exc)
    if stack:
        return f"<{stack[-1]}> is never closed"
    return None


_SPACES_TO_TRIM = " \n"
# What Telegram does to the parsed text on sending: "\r" and U+2028..U+202E, U+030A, U+0333, U+033F
# are removed, other C0 controls (tab included) become spaces.
_SEND_DROPPED = re.compile("[\r\u2028-\u202e\u030a\u0333\u033f]")
_SEND_SPACED = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f]")


def visible_text(markup: str) -> str:
    """The plain text Telegram shows for this HTML: tags removed, entities decoded, ends trimmed."""
    pieces: list[str] = []
    open_at: list[int] = []  # plain-text offsets where the open tags start
    first_entity = None
    size = 0
    for token in tokenize_telegram_html(markup, strict=False):
        if token.kind == "text":
            text = _SEND_SPACED.sub(" ", _SEND_DROPPED.sub("", token.text))
            pieces.append(text)
            size += len(text)
        elif token.kind == "start":
            open_at.append(size)
        elif open_at:
            start = open_at.pop()
            # Telegram keeps leading spaces inside the first entity that holds more than spaces.
            if size > start and (first_entity is None or start < first_entity):
                content = "".join(pieces)[start:size]
                if content.strip(_SPACES_TO_TRIM):
                    first_entity = start
    text = "".join(pieces).rstrip(_SPACES_TO_TRIM)
    head = text[:first_entity] if first_entity is not None else text
    return head.lstrip(_SPACES_TO_TRIM) + text[len(head):]


@lru_cache(maxsize=256)
def visible_length(markup: str) -> int:
    """UTF-16 length of the text Telegram shows for this HTML (what its 4096/1024 limits count)."""
    return utf16_length(visible_text(markup))


def escape_text(text: str) -> str:
    """Text escaped for Telegram HTML (quotes too, so it is safe inside attributes as well)."""
    return html.escape(text, quote=False).replace('"', "&quot;")


# ---------------------------------------------------------------------------------------------
# Links and hashtags

_HREF_CANDIDATES = re.compile(r'[^!#-;=?-\[\]_a-z~]')  # all but the ASCII that is safe in an href
_HOST_LABEL = re.compile(r"^(?:[a-z0-9_]|[^\x00-\x7f])(?:[a-z0-9_-]|[^\x00-\x7f])*$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def _percent_encode(match: re.Match[str]) -> str:
    c = match.group()
    if c.isascii() or c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn"):
        return "".join(f"%{b:02X}" for b in c.encode("utf-8"))
    return c  # readable non-ASCII (letters, CJK ...) stays; Telegram accepts it


def _percent_encode_unsafe(url: str) -> str:
    return _HREF_CANDIDATES.sub(_percent_encode, url)


def _valid_host(host: str) -> bool:
    if _IPV4.match(host):
        return all(int(part) <= 255 for part in host.split("."))
    labels = host.split(".")
    if len(labels) < 2 or len(host) > 253:
        return False
    if not all(0 < len(label) <= 63 and _HOST_LABEL.match(label) for label in labels):
        return False
    return any(not c.isdigit() for c in labels[-1])


@lru_cache(maxsize=4096)
def telegram_href(url: str | None) -> str | None:
    """An absolute http(s) URL Telegram accepts as a link, or None (relative, other scheme, bad host).

    Spaces, quotes and other characters that are unsafe in an href are percent-encoded; non-ASCII
    stays readable (Telegram accepts it, IDN hosts included).
    """
    url = clean_line(url)
    if not url:
        return None
    url = _percent_encode_unsafe(url)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or not _valid_host(host):
        return None
    if port is not None and not 0 < port < 65536:
        return None
    return parts.scheme.lower() + url[len(parts.scheme):]


def source_name(url: str | None) -> str:
    """A readable source name from a URL: its host without "www." (IDN decoded), or ""."""
    href = telegram_href(url)
    if not href:
        return ""
    host = urlsplit(href).hostname or ""
    host = host.removeprefix("www.")
    try:
        return host.encode("ascii").decode("idna") if "xn--" in host else host
    except (UnicodeError, ValueError):
        return host


# Names whose punctuation carries the meaning; dropping it would turn "C++" into "#C".
_HASHTAG_WORDS = {"c++": "cpp", "c#": "csharp", "f#": "fsharp", ".net": "dotnet"}


def _is_hashtag_letter(c: str) -> bool:
    return unicodedata.category(c)[0] == "L"


@lru_cache(maxsize=4096)
def hashtag(word: str | None) -> str | None:
    """``#word`` as Telegram recognises a hashtag (letters, digits, "_"; a letter needed), or None."""
    text = clean_line(word)
    text = _HASHTAG_WORDS.get(text.casefold(), text)
    chars = [c if c == "_" or _is_hashtag_letter(c) or unicodedata.category(c) == "Nd" else "_"
             for c in text]
    tag = re.sub("_+", "_", "".join(chars)).strip("_")[:48].strip("_")
    if not any(_is_hashtag_letter(c) for c in tag):
        return None
    return "#" + tag


def hashtags_for(words: Iterable[str], limit: int) -> list[str]:
    """Distinct hashtags (case-insensitive) of ``words``, at most ``limit``."""
    seen: set[str] = set()
    result: list[str] = []
    for word in words:
        tag = hashtag(word)
        if tag and tag.casefold() not in seen and len(result) < limit:
            seen.add(tag.casefold())
            result.append(tag)
    return result


# ---------------------------------------------------------------------------------------------
# Shortening text

_CJK_STOPS = "。！？"
_CLOSERS = "”’」』）)】》〉»\"'"
_TRAILING_PUNCT = "，、,;；:：（(“‘「『《〈[【-—"
_URL_SPAN = re.compile(r"(?:https?://|www\.)[!-~]+", re.IGNORECASE)


_STOP_RUN = re.compile("[。！？!?.][。！？!?.…]*[" + re.escape(_CLOSERS) + "]*|\n")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Analysis:
    """Where a text may be cut, computed once per text."""

    cum: list[int]  # cum[i]: UTF-16 length of text[:i]
    sentence_ends: list[int]  # sorted cut positions right after a sentence
    word_breaks: list[int]  # sorted cut positions between words (CJK: between characters)
    glued: frozenset[int]  # positions inside a grapheme (before a mark, around a ZWJ ...)
    inside_url: Callable[[int], bool]


@lru_cache(maxsize=512)
def _analyse(text: str) -> _Analysis:
    n = len(text)
    if text.isascii() or max(text) <= "\uffff":
        cum = list(range(n + 1))
    else:
        cum = [0, *accumulate(2 if ord(c) > 0xFFFF else 1 for c in text)]
    inside_url = _inside_spans([m.span() for m in _URL_SPAN.finditer(text)])

    glued: set[int] = set()
    candidates: set[int] = set()
    for m in _NON_ASCII.finditer(text):
        c, i = m.group(), m.start()
        if _joins_previous(c):
            glued.add(i)
        if c == "\u200d":
            glued.add(i + 1)
        if _is_wide(c):
            candidates.update((i, i + 1))
    for m in _WHITESPACE.finditer(text):
        candidates.update(m.span())
    breaks = sorted(p for p in candidates if 0 < p < n and p not in glued and not inside_url(p))

    ends: list[int] = []
    for m in _STOP_RUN.finditer(text):
        i, j = m.span()
        if m.group() == "\n":
            if i > 0 and text[i - 1] != "\n":
                ends.append(i)
            continue
        run = m.group()
        if any(s in run for s in _CJK_STOPS) or j == n or text[j].isspace():
            boundary = True
        else:  # "3.5", "example.com": an English "." needs a space after it; "!"/"?" before CJK is fine
            boundary = "." not in run and _is_wide(text[j])
        if boundary and not inside_url(i):
            ends.append(j)
    return _Analysis(cum, ends, breaks, frozenset(glued), inside_url)


def _inside_spans(spans: list[tuple[int, int]]) -> Callable[[int], bool]:
    """A test "is this position strictly inside one of these sorted, disjoint spans"."""
    starts = [start for start, _ in spans]

    def inside(pos: int) -> bool:
        i = bisect_left(starts, pos) - 1
        return i >= 0 and pos < spans[i][1]

    return inside


def _is_wide(c: str) -> bool:
    return unicodedata.east_asian_width(c) in ("W", "F")


def _joins_previous(c: str) -> bool:
    """True for characters that belong to the preceding one (marks, ZWJ, variation selectors, skin tones)."""
    code = ord(c)
    return (unicodedata.category(c).startswith("M") or code == 0x200D or 0xFE00 <= code <= 0xFE0F
            or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F)


def _with_ellipsis(text: str, pos: int) -> str:
    head = text[:pos].rstrip().rstrip(_TRAILING_PUNCT).rstrip()
    return head + ELLIPSIS if head else ""


def _cut_at_word(text: str, analysis: _Analysis, limit: int) -> str:
    """The longest prefix ending between words that fits ``limit`` with an ellipsis added."""
    last = bisect_right(analysis.cum, limit - 1) - 1  # the furthest cut leaving room for "…"
    breaks = analysis.word_breaks
    for k in range(bisect_right(breaks, last) - 1, -1, -1):
        cut = _with_ellipsis(text, breaks[k])
        if cut:
            return cut
    return ""


def _cut_anywhere(text: str, analysis: _Analysis, limit: int) -> str:
    """Like ``_cut_at_word`` but between any two graphemes outside URLs (for one overlong word)."""
    pos = min(len(text) - 1, bisect_right(analysis.cum, limit - 1) - 1)
    while pos > 0:
        if pos not in analysis.glued and not analysis.inside_url(pos):
            cut = _with_ellipsis(text, pos)
            if cut:
                return cut
        pos -= 1
    return ""


@lru_cache(maxsize=2048)
def shorten(text: str, limit: int, *, hard: bool = False) -> str:
    """``text`` cut to at most ``limit`` UTF-16 units at a sentence end, else at a word end plus "…".

    Sentence ends are 。！？ and ".", "!", "?" followed by a space or the end ("3.5" and
    "example.com" are not). Never cuts inside a word, a URL or a grapheme; with ``hard`` a single
    word too long for ``limit`` is cut at a character instead of giving "".
    """
    if limit <= 0 or not text:
        return ""
    analysis = _analyse(text)
    if analysis.cum[-1] <= limit:
        return text
    best = ""
    ends = analysis.sentence_ends
    fitting = bisect_right(ends, bisect_right(analysis.cum, limit) - 1)
    if fitting:
        best = text[:ends[fitting - 1]]
    best = best.rstrip()
    # A short first sentence loses to a fuller cut at a word: keep at least ~40% of the budget.
    if best and utf16_length(best) * 5 >= limit * 2:
        return best
    cut = _cut_at_word(text, analysis, limit)
    if len(cut) < len(best):
        cut = best
    if not cut and hard:
        cut = _cut_anywhere(text, analysis, limit) or ELLIPSIS
    return cut


def strip_label(commentary: str, label: str) -> str:
    """Commentary without a leading ``label`` (and its colon), so the template adds it exactly once."""
    if label and commentary.startswith(label):
        rest = commentary[len(label):]
        stripped = rest.lstrip(" ")
        if stripped[:1] in ("：", ":"):
            return stripped[1:].strip()
        if not rest or rest[:1].isspace():
            return rest.strip()
    return commentary


def needs_commentary_hold(item: BlurbItem, policy: str, *, label: str = DEFAULT_COMMENTARY_LABEL) -> bool:
    """True when ``policy`` is "hold" and the item has no commentary yet (not publishable)."""
    if policy == "publish":
        return False
    if policy == "hold":
        return not strip_label(clean_block(getattr(item, "commentary", "")), label)
    raise ConfigError(f"commentary_policy: {policy!r} is not one of {', '.join(COMMENTARY_POLICIES)}")


# ---------------------------------------------------------------------------------------------
# Templates

class _MemoryLoader(jinja2.BaseLoader):
    """Serves the templates read at construction, under "single", "digest" and "photo"."""

    def __init__(self, sources: dict[str, tuple[str, str]]) -> None:
        self.sources = sources

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        source, filename = self.sources[template]
        return source, filename, lambda: True


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}``: None prints nothing; plain text is cleaned and escaped for Telegram."""
    if value is None:
        return ""
    if hasattr(value, "__html__"):
        return value
    return Markup(escape_text(telegram_safe(str(value))))


def _href_filter(value: Any) -> Markup:
    """``{{ url|href }}``: a valid http(s) link, escaped for a double-quoted attribute, or ""."""
    href = telegram_href(str(value)) if value else None
    return Markup(html.escape(href, quote=True)) if href else Markup("")


def _make_environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=True,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["href"] = _href_filter
    return env


def _template_line(exc: BaseException, filename: str) -> int | None:
    """The template line of a render error (Jinja maps its frames to the template's lines)."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _template_error(filename: str, exc: BaseException) -> TemplateError:
    line = _template_line(exc, filename)
    where = f"template {filename}" + (f" line {line}" if line else "")
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return TemplateError(f"{where}: {message}")


def _tidy(markup: str) -> str:
    """Rendered output with at most one blank line in a row and no whitespace at either end."""
    markup = markup.replace("\r\n", "\n")
    markup = re.sub(r"[ \t]+\n", "\n", markup)
    return _MANY_NEWLINES.sub("\n\n", markup).strip()


# ---------------------------------------------------------------------------------------------
# Formatting

_SHRINKABLE = ("summary", "commentary", "title", "source")


@dataclass(slots=True)
class _Draft:
    """One item's full texts and the budgets (UTF-16 units) they are currently cut to."""

    index: int
    id: int | None
    title: str
    summary: str
    url: str | None
    source: str
    commentary: str
    hashtags: list[str]
    image: str | None
    category: str
    tags: list[str]
    published_at: datetime | None
    budget: dict[str, int]

    def shortened(self, name: str) -> str:
        """Text ``name`` cut to its budget; only the summary may vanish for a single overlong word."""
        return shorten(getattr(self, name), self.budget[name], hard=name != "summary")

    def entry(self) -> Entry:
        return Entry(
            index=self.index,
            id=self.id,
            title=self.shortened("title") or UNTITLED,
            summary=self.shortened("summary"),
            url=self.url,
            source=self.shortened("source"),
            commentary=self.shortened("commentary"),
            hashtags=list(self.hashtags),
            image=self.image,
            category=self.category,
            tags=list(self.tags),
            published_at=self.published_at,
        )


def _same_sentence(summary: str, title: str) -> bool:
    """True when the summary only repeats the title (give or take closing punctuation)."""
    ends = "。！？.!?…；;，, "
    return bool(summary) and summary.rstrip(ends) == title.rstrip(ends)


class BlurbFormatter:
    """Formats items for one channel; templates are compiled (and test-rendered) at construction.

    Raises:
        TemplateError: a template override is unreadable, does not compile, fails to render a
            sample item or renders HTML Telegram would reject; the message names file and line.
    """

    def __init__(self, config: BlurbConfig | Any | None = None) -> None:
        if config is None:
            config = BlurbConfig()
        elif not isinstance(config, BlurbConfig):
            config = BlurbConfig.from_channel(config)
        self.config: BlurbConfig = config
        overrides = {"single": config.single_template, "digest": config.digest_template,
                     "photo": config.photo_template}
        sources = {name: _read_template(Path(path) if path else TEMPLATE_DIR / f"{name}.j2")
                   for name, path in overrides.items()}
        self._env = _make_environment(_MemoryLoader(sources))
        self._templates: dict[str, jinja2.Template] = {}
        for name, (_source, filename) in sources.items():
            try:
                self._templates[name] = self._env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(
                    f"template {exc.filename or filename} line {exc.lineno}: {exc.message}") from None
            except jinja2.TemplateError as exc:
                raise _template_error(filename, exc) from None
        self._check_templates()

    # -- public API ---------------------------------------------------------------------------

    def format_single(self, item: BlurbItem) -> Message:
        """One item as one text message (<= 4096)."""
        draft = self._draft(item, 1, self.config.summary_length)
        markup = self._fit(draft, lambda: self._render_single("single", draft), TEXT_LIMIT)
        return self._message("single", markup, None, [draft.id])

    def format_photo(self, item: BlurbItem) -> Message:
        """One item as a photo with a caption (<= 1024); a text message when it has no usable image."""
        draft = self._draft(item, 1, self.config.summary_length)
        if not draft.image:
            return self.format_single(item)
        markup = self._fit(draft, lambda: self._render_single("photo", draft), CAPTION_LIMIT)
        return self._message("photo", markup, draft.image, [draft.id])

    def format_digest(self, items: Sequence[BlurbItem], number: int | None = None,
                      title: str | None = None) -> list[Message]:
        """Items bundled like the column ("硬核观察 #N"), split into "(1/2)" ... parts past 4096.

        Each item stays whole within one part; an item too long on its own gets shorter texts.
        """
        if not items:
            raise ValueError("a digest needs at least one item")
        heading = clean_line(self.config.digest_title if title is None else title)
        length = self.config.digest_summary_length or self.config.summary_length
        drafts = [self._draft(item, i, length) for i, item in enumerate(items, 1)]

        def render(part: list[_Draft], number_of: tuple[int, int] = (1, 1)) -> str:
            return self._render_digest(part, heading, number, *number_of)

        markup = render(drafts)
        if visible_length(markup) <= TEXT_LIMIT:
            return [self._message("digest", markup, None, [d.id for d in drafts])]
        widest = int("9" * len(str(len(drafts))))  # the longest "(k/n)" any split can need
        for draft in drafts:
            self._fit(draft, partial(render, [draft], (widest, widest)), TEXT_LIMIT)
        parts: list[list[_Draft]] = [[]]
        for draft in drafts:
            candidate = [*parts[-1], draft]
            if parts[-1] and visible_length(render(candidate, (widest, widest))) > TEXT_LIMIT:
                parts.append([draft])
            else:
                parts[-1] = candidate
        messages = []
        for k, part in enumerate(parts, 1):
            markup = render(part, (k, len(parts)))
            messages.append(self._message("digest", markup, None, [d.id for d in part]))
        return messages

    # -- drafting and fitting -----------------------------------------------------------------

    def _draft(self, item: BlurbItem, index: int, summary_length: int) -> _Draft:
        url = telegram_href(getattr(item, "url", ""))
        source = clean_line(getattr(item, "source", "")) or source_name(url)
        tags = [clean_line(str(t)) for t in (getattr(item, "tags", None) or [])]
        category = clean_line(getattr(item, "category", ""))
        hashtags = hashtags_for([*tags, category], self.config.max_hashtags) if self.config.hashtags else []
        commentary = strip_label(clean_block(getattr(item, "commentary", "")), self.config.commentary_label)
        item_id = getattr(item, "id", None)
        title = clean_line(getattr(item, "title", "")) or UNTITLED
        summary = clean_block(getattr(item, "summary", ""))
        if _same_sentence(summary, title):  # a one-sentence follow-up: say it once
            summary = ""
        unlimited = 1 << 30
        return _Draft(
            index=index,
            id=item_id if isinstance(item_id, int) else None,
            title=title,
            summary=summary,
            url=url,
            source=source,
            commentary=commentary,
            hashtags=hashtags,
            image=telegram_href(getattr(item, "image", None)),
            category=category,
            tags=[t for t in tags if t],
            published_at=getattr(item, "published_at", None),
            budget={"summary": max(summary_length, 0), "commentary": unlimited, "title": unlimited,
                    "source": unlimited},
        )

    def _fit(self, draft: _Draft, render: Callable[[], str], limit: int) -> str:
        """Shrink the draft's texts (summary first) until ``render()`` fits ``limit``."""
        markup = render()
        excess = visible_length(markup) - limit
        if excess <= 0:
            return markup
        for name in _SHRINKABLE:
            shown = utf16_length(draft.shortened(name))
            if shown <= 0:
                continue
            # Cutting this text by the excess is always enough, so search only between the two.
            fits, too_long = max(shown - excess, 0), shown
            draft.budget[name] = fits
            excess = visible_length(render()) - limit
            if excess > 0 and fits > 0:
                draft.budget[name] = fits = 0
                excess = visible_length(render()) - limit
            if excess > 0:
                continue  # not enough even without it: leave it out and shrink the next one
            while too_long - fits > 1:
                middle = (fits + too_long) // 2
                draft.budget[name] = middle
                if visible_length(render()) <= limit:
                    fits = middle
                else:
                    too_long = middle
            draft.budget[name] = fits
            return render()
        if draft.hashtags:
            draft.hashtags = []
            markup = render()
            if visible_length(markup) <= limit:
                return markup
        raise TemplateError(f"the templates leave no room within {limit} characters for item "
                            f"{draft.id if draft.id is not None else draft.index}")

    # -- rendering ----------------------------------------------------------------------------

    def _labels(self) -> dict[str, str]:
        return {"commentary_label": clean_line(self.config.commentary_label),
                "source_label": clean_line(self.config.source_label)}

    def _render_single(self, name: str, draft: _Draft) -> str:
        entry = draft.entry()
        return self._render(name, entry=entry, **_entry_context(entry), **self._labels())

    def _render_digest(self, drafts: list[_Draft], heading: str, number: int | None,
                       part: int, parts: int) -> str:
        entries = [d.entry() for d in drafts]
        hashtags = hashtags_for([t for e in entries for t in e.hashtags], self.config.max_hashtags)
        return self._render("digest", title=heading, number=number, part=part, parts=parts,
                            entries=entries, hashtags=hashtags, **self._labels())

    def _render(self, name: str, **context: Any) -> str:
        template = self._templates[name]
        filename = template.filename or name
        try:
            markup = _tidy(template.render(**context))
        except Exception as exc:  # a template may fail in any way; report it against its line
            raise _template_error(filename, exc) from None
        return markup

    def _message(self, name: str, markup: str, photo: str | None, item_ids: list[int | None]) -> Message:
        """The final message, once its markup is known to be HTML Telegram accepts."""
        problem = check_telegram_html(markup)
        if problem:
            filename = self._templates[name].filename or name
            raise TemplateError(f"template {filename}: renders HTML Telegram rejects: {problem}")
        return Message(markup, photo, item_ids, visible_length(markup))

    def _check_templates(self) -> None:
        """Render a sample through every template now, so a broken override stops start-up."""
        sample = _SampleItem()
        self.format_single(sample)
        self.format_photo(sample)
        self.format_digest([sample, sample], number=1)


def _entry_context(entry: Entry) -> dict[str, Any]:
    return {f.name: getattr(entry, f.name) for f in fields(entry)}


def _read_template(path: Path) -> tuple[str, str]:
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TemplateError(f"template {path}: cannot read it: {reason}") from None


@dataclass
class _SampleItem:
    id: int | None = 1
    title: str = "示例标题 <&> \"quoted\""
    url: str = "https://example.com/news?id=1&lang=zh"
    summary: str = "第一句话。Second sentence with 3.5 and example.com in it. 第三句话！"
    commentary: str = "老王点评：示例点评。"
    source: str = "Example"
    image: str | None = "https://example.com/image.jpg"
    tags: list[str] = field(default_factory=lambda: ["AI", "开源"])
    category: str = "硬核观察"
    published_at: datetime | None = None


@lru_cache(maxsize=1)
def default_formatter() -> BlurbFormatter:
    """The formatter with the built-in templates and default options."""
    return BlurbFormatter()


def format_single(item: BlurbItem, formatter: BlurbFormatter | None = None) -> Message:
    """One item as one text message; see ``BlurbFormatter.format_single``."""
    return (formatter or default_formatter()).format_single(item)


def format_photo(item: BlurbItem, formatter: BlurbFormatter | None = None) -> Message:
    """One item as a photo with caption; see ``BlurbFormatter.format_photo``."""
    return (formatter or default_formatter()).format_photo(item)


def format_digest(items: Sequence[BlurbItem], number: int | None = None, title: str | None = None,
                  formatter: BlurbFormatter | None = None) -> list[Message]:
    """Items as one 硬核观察 post (or several parts); see ``BlurbFormatter.format_digest``."""
    return (formatter or default_formatter()).format_digest(items, number=number, title=title)
