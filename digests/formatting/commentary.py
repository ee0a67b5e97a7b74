"""The commentary policy: the label a template adds, and whether an item waits for commentary."""

from __future__ import annotations

from typing import Protocol

from digests.errors import ConfigError
from digests.formatting.telegram_html import clean_message_block

DEFAULT_COMMENTARY_LABEL = "老王点评"
COMMENTARY_POLICIES = ("publish", "hold")


class Commented(Protocol):
    """An item with commentary (``BlurbItem`` fits)."""

    @property
    def commentary(self) -> str: ...


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


def needs_commentary_hold(item: Commented, policy: str, *, label: str = DEFAULT_COMMENTARY_LABEL) -> bool:
    """True when ``policy`` is "hold" and the item has no commentary yet (not publishable)."""
    if policy == "publish":
        return False
    if policy == "hold":
        return not strip_label(clean_message_block(getattr(item, "commentary", "")), label)
    raise ConfigError(f"commentary_policy: {policy!r} is not one of {', '.join(COMMENTARY_POLICIES)}")
