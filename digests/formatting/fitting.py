"""An item's texts as a template sees them, and shrinking them until the rendered post fits a limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from digests.errors import TemplateError
from digests.formatting.shorten import shorten
from digests.formatting.telegram_html import utf16_length, visible_length

UNTITLED = "（无标题）"


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


@dataclass(slots=True)
class Draft:
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


_SHRINKABLE = ("summary", "commentary", "title", "source")  # in the order they give way


def fit_to_limit(draft: Draft, render: Callable[[], str], limit: int) -> str:
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
