"""Item -> Telegram HTML: single posts, 硬核观察 digests and photo captions, always within Telegram's limits.

Pure: text in, ``Message`` out. The only I/O is reading template files when a ``BlurbFormatter`` is
built, so a bad template stops start-up instead of a publish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Protocol

import jinja2

from digests.errors import TemplateError
from digests.formatting.commentary import DEFAULT_COMMENTARY_LABEL, strip_label
from digests.formatting.fitting import UNTITLED, Draft, Entry, fit_to_limit
from digests.formatting.links import hashtags_for, source_name, telegram_href
from digests.formatting.telegram_html import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    check_telegram_html,
    clean_message_block,
    clean_message_line,
    visible_length,
)
from digests.formatting.templating import load_templates, render_template, template_filename


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
        self._templates: dict[str, jinja2.Template] = load_templates(
            {"single": config.single_template, "digest": config.digest_template,
             "photo": config.photo_template})
        self._check_templates()

    # -- public API ---------------------------------------------------------------------------

    def format_single(self, item: BlurbItem) -> Message:
        """One item as one text message (<= 4096)."""
        draft = self._draft(item, 1, self.config.summary_length)
        markup = fit_to_limit(draft, lambda: self._render_single("single", draft), TEXT_LIMIT)
        return self._message("single", markup, None, [draft.id])

    def format_photo(self, item: BlurbItem) -> Message:
        """One item as a photo with a caption (<= 1024); a text message when it has no usable image."""
        draft = self._draft(item, 1, self.config.summary_length)
        if not draft.image:
            return self.format_single(item)
        markup = fit_to_limit(draft, lambda: self._render_single("photo", draft), CAPTION_LIMIT)
        return self._message("photo", markup, draft.image, [draft.id])

    def format_digest(self, items: Sequence[BlurbItem], number: int | None = None,
                      title: str | None = None) -> list[Message]:
        """Items bundled like the column ("硬核观察 #N"), split into "(1/2)" ... parts past 4096.

        Each item stays whole within one part; an item too long on its own gets shorter texts.
        """
        if not items:
            raise ValueError("a digest needs at least one item")
        heading = clean_message_line(self.config.digest_title if title is None else title)
        length = self.config.digest_summary_length or self.config.summary_length
        drafts = [self._draft(item, i, length) for i, item in enumerate(items, 1)]

        def render(part: list[Draft], number_of: tuple[int, int] = (1, 1)) -> str:
            return self._render_digest(part, heading, number, *number_of)

        markup = render(drafts)
        if visible_length(markup) <= TEXT_LIMIT:
            return [self._message("digest", markup, None, [d.id for d in drafts])]
        widest = int("9" * len(str(len(drafts))))  # the longest "(k/n)" any split can need
        for draft in drafts:
            fit_to_limit(draft, partial(render, [draft], (widest, widest)), TEXT_LIMIT)
        parts: list[list[Draft]] = [[]]
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

    # -- drafting -----------------------------------------------------------------------------

    def _draft(self, item: BlurbItem, index: int, summary_length: int) -> Draft:
        url = telegram_href(getattr(item, "url", ""))
        source = clean_message_line(getattr(item, "source", "")) or source_name(url)
        tags = [clean_message_line(str(t)) for t in (getattr(item, "tags", None) or [])]
        category = clean_message_line(getattr(item, "category", ""))
        hashtags = hashtags_for([*tags, category], self.config.max_hashtags) if self.config.hashtags else []
        commentary = strip_label(clean_message_block(getattr(item, "commentary", "")), self.config.commentary_label)
        item_id = getattr(item, "id", None)
        title = clean_message_line(getattr(item, "title", "")) or UNTITLED
        summary = clean_message_block(getattr(item, "summary", ""))
        if _same_sentence(summary, title):  # a one-sentence follow-up: say it once
            summary = ""
        unlimited = 1 << 30
        return Draft(
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

    # -- rendering ----------------------------------------------------------------------------

    def _labels(self) -> dict[str, str]:
        return {"commentary_label": clean_message_line(self.config.commentary_label),
                "source_label": clean_message_line(self.config.source_label)}

    def _render_single(self, name: str, draft: Draft) -> str:
        entry = draft.entry()
        return self._render(name, entry=entry, **_entry_context(entry), **self._labels())

    def _render_digest(self, drafts: list[Draft], heading: str, number: int | None,
                       part: int, parts: int) -> str:
        entries = [d.entry() for d in drafts]
        hashtags = hashtags_for([t for e in entries for t in e.hashtags], self.config.max_hashtags)
        return self._render("digest", title=heading, number=number, part=part, parts=parts,
                            entries=entries, hashtags=hashtags, **self._labels())

    def _render(self, name: str, **context: Any) -> str:
        return render_template(self._templates[name], context)

    def _message(self, name: str, markup: str, photo: str | None, item_ids: list[int | None]) -> Message:
        """The final message, once its markup is known to be HTML Telegram accepts."""
        problem = check_telegram_html(markup)
        if problem:
            filename = template_filename(self._templates[name])
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
