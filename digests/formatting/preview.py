"""Previews of formatted messages: a standalone HTML page that looks like a Telegram channel, and
plain text for a terminal. Pure: messages in, text out.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field

from digests.formatting.blurb import Message
from digests.formatting.telegram_html import tokenize_telegram_html

# Telegram tag -> (browser tag, class); anything else is dropped, its text kept.
_BROWSER_TAGS = {
    "b": ("strong", ""), "strong": ("strong", ""), "i": ("em", ""), "em": ("em", ""),
    "u": ("u", ""), "ins": ("u", ""), "s": ("s", ""), "strike": ("s", ""), "del": ("s", ""),
    "code": ("code", ""), "pre": ("pre", ""), "blockquote": ("blockquote", "quote"),
    "tg-spoiler": ("span", "spoiler"), "span": ("span", "spoiler"), "tg-emoji": ("span", ""),
}
_SAFE_SCHEMES = ("http://", "https://", "tg://")


@dataclass(slots=True)
class _Node:
    name: str  # "" for the root
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[_Node | str] = field(default_factory=list)


def _tree(markup: str) -> _Node:
    """Telegram HTML as a tree; tolerant of stray end tags (a preview must never fail)."""
    root = _Node("")
    stack = [root]
    for token in tokenize_telegram_html(markup, strict=False):
        if token.kind == "text":
            stack[-1].children.append(token.text)
        elif token.kind == "start":
            node = _Node(token.name, token.attrs)
            stack[-1].children.append(node)
            stack.append(node)
        elif any(n.name == token.name for n in stack[1:]):
            while stack.pop().name != token.name:
                pass
    return root


def _safe_href(href: str) -> str | None:
    return href if href.lower().startswith(_SAFE_SCHEMES) else None


def _to_browser(node: _Node) -> str:
    inner = "".join(html.escape(c) if isinstance(c, str) else _to_browser(c) for c in node.children)
    if node.name == "a":
        href = _safe_href(node.attrs.get("href", ""))
        if not href:
            return inner
        return f'<a href="{html.escape(href)}" target="_blank" rel="noopener noreferrer">{inner}</a>'
    if node.name not in _BROWSER_TAGS:
        return inner
    tag, css = _BROWSER_TAGS[node.name]
    return f'<{tag} class="{css}">{inner}</{tag}>' if css else f"<{tag}>{inner}</{tag}>"


def message_to_browser_html(message: Message) -> str:
    """The message body as browser HTML (only the tags Telegram supports; links http(s) only)."""
    return _to_browser(_tree(message.html))


_PAGE_STYLE = """
body { margin: 0; background: #8fb98b; font: 15px/1.45 -apple-system, "Segoe UI", Roboto,
       "Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", sans-serif; color: #000; }
header { background: #517da2; color: #fff; padding: 12px 20px; font-size: 18px; font-weight: 600; }
main { max-width: 560px; margin: 0 auto; padding: 16px 12px 40px; }
.message { background: #fff; border-radius: 12px; margin: 0 0 14px; overflow: hidden;
           box-shadow: 0 1px 2px rgba(0, 0, 0, .15); }
.message img { display: block; width: 100%; max-height: 320px; object-fit: cover; background: #dfe6ec;
               min-height: 120px; color: #667; font-size: 13px; text-align: center; }
.text { padding: 8px 12px 4px; white-space: pre-wrap; overflow-wrap: anywhere; }
.text a { color: #168acd; text-decoration: none; }
/* inline-block: the "\n" around a quote then breaks lines as in Telegram, adding no blank line */
.text blockquote.quote { display: inline-block; box-sizing: border-box; width: 100%; margin: 2px 0;
                         padding: 2px 8px; border-left: 3px solid #168acd; background: #eef6fc;
                         border-radius: 4px; vertical-align: top; }
.text .spoiler { background: #ccc; color: transparent; border-radius: 3px; }
.text code, .text pre { font-family: ui-monospace, Menlo, monospace; font-size: 13px; }
.meta { display: flex; justify-content: flex-end; gap: 8px; padding: 2px 10px 6px; font-size: 12px;
        color: #8a9aa6; }
.badge { border-radius: 8px; padding: 0 6px; background: #e7f3e6; color: #2e7d32; }
.badge.over { background: #fdecea; color: #c62828; font-weight: 600; }
"""


def render_preview_page(messages: Iterable[Message], title: str = "预览") -> str:
    """A standalone HTML page showing each message as Telegram would, with a length badge each."""
    cards = []
    for number, message in enumerate(messages, 1):
        photo = ""
        if message.photo and _safe_href(message.photo):
            photo = f'<img src="{html.escape(message.photo)}" alt="photo: {html.escape(message.photo)}">'
        over = " over" if message.length > message.limit else ""
        ids = ", ".join("-" if i is None else str(i) for i in message.item_ids)
        cards.append(
            f'<article class="message" id="m{number}">{photo}'
            f'<div class="text">{message_to_browser_html(message)}</div>'
            f'<div class="meta"><span class="items">#{number} · items {html.escape(ids)}</span>'
            f'<span class="badge{over}">{message.length} / {message.limit}</span></div></article>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_PAGE_STYLE}</style>\n</head>\n<body>\n"
        f"<header>{html.escape(title)}</header>\n<main>\n" + "\n".join(cards) + "\n</main>\n</body>\n</html>\n"
    )


def _to_terminal(node: _Node) -> str:
    inner = "".join(c if isinstance(c, str) else _to_terminal(c) for c in node.children)
    name = node.name
    if name in ("b", "strong"):
        return f"**{inner}**" if inner.strip() else inner
    if name in ("i", "em"):
        return f"_{inner}_" if inner.strip() else inner
    if name in ("s", "strike", "del"):
        return f"~{inner}~" if inner.strip() else inner
    if name == "code":
        return f"`{inner}`"
    if name == "a":
        href = node.attrs.get("href", "")
        return inner if not href or href == inner else f"{inner} ({href})"
    if name == "blockquote":
        return "\n".join("│ " + line for line in inner.split("\n"))
    return inner


def render_terminal(message: Message) -> str:
    """The message as readable plain text: **bold**, "text (url)" links, "│ " quoted lines."""
    text = _to_terminal(_tree(message.html))
    head = f"[photo] {message.photo}\n" if message.photo else ""
    return f"{head}{text}\n[{message.length}/{message.limit}]"
