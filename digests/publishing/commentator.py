"""Commentator plugins: draft a one-line editor's take for items that have none (off by default).

The shipped plugin speaks the OpenAI-compatible chat-completions protocol, which most hosted and
local model servers offer. Its drafts are stored as commentary of origin "plugin" with the
model's name as author; an editor's own commentary always wins over a draft.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import httpx

from digests.config import CommentatorConfig
from digests.items import ItemView
from digests.store import posts
from digests.store.db import Database
from digests.store.items import add_commentary, item_views

log = logging.getLogger(__name__)
MAX_LENGTH = 140


class Commentator(Protocol):
    name: str

    def comment(self, item: ItemView) -> str | None:
        """One line of commentary for the item, or None when the plugin has nothing to say."""


class OpenAICompatibleCommentator:
    """POST {url}/chat/completions with the configured model and prompt."""

    def __init__(self, config: CommentatorConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        if not config.url or not config.model:
            raise ValueError("commentator.url and commentator.model are needed when the commentator is enabled")
        self.config = config
        self.name = f"plugin:{config.model}"
        headers = {}
        key = config.api_key.get_secret_value()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=config.url.rstrip("/"), headers=headers, timeout=config.timeout,
                                    transport=transport)

    def comment(self, item: ItemView) -> str | None:
        text = f"{item.title}\n\n{item.summary[:1500]}"
        body = {"model": self.config.model, "temperature": 0.7, "max_tokens": 200,
                "messages": [{"role": "system", "content": self.config.prompt},
                             {"role": "user", "content": text}]}
        try:
            response = self._client.post("/chat/completions", json=body)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("commentator could not comment item %s: %s", item.id, exc)
            return None
        return clean_draft(content)

    def close(self) -> None:
        self._client.close()


def clean_draft(content: object) -> str | None:
    """The first non-empty line, without a label the model may have added, at most MAX_LENGTH."""
    if not isinstance(content, str):
        return None
    for line in content.splitlines():
        line = line.strip().strip('"“”').strip()
        for label in ("老王点评：", "老王点评:", "点评：", "点评:"):
            line = line.removeprefix(label).strip()
        if line:
            return line[:MAX_LENGTH]
    return None


def make_commentator(config: CommentatorConfig) -> Commentator | None:
    return OpenAICompatibleCommentator(config) if config.enabled else None


def fill_missing_commentary(db: Database, commentator: Commentator, item_ids: Sequence[int]) -> int:
    """Ask the plugin for the items that have no commentary at all; returns how many it filled.

    The HTTP calls happen outside any transaction; each draft is stored on its own.
    """
    with db.session() as session:
        views = item_views(session, posts.uncommented_items(session, item_ids))
    filled = 0
    for view in views:
        draft = commentator.comment(view)
        if draft:
            with db.session() as session:
                add_commentary(session, view.id, draft, author=commentator.name, origin="plugin")
            filled += 1
    return filled
