"""Markdown shared by the format parsers: the block-line regexes and inline Markdown to plain text.

The block regexes follow CommonMark's indentation (up to three spaces); linux.cn's scanner
(``_linuxcn_blocks``) is laxer on purpose and keeps its own.
"""

from __future__ import annotations

import html
import re

from digests.parsers._text import clean_line

CODE_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
QUOTE_MARKERS = re.compile(r"^\s*(?:>\s?)+")
IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")

_LINK = re.compile(r"\[([^\]\n]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"\n]*\")?\)")
_REF_LINK = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->", re.DOTALL)
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_CODE = re.compile(r"`+([^`\n]*?)`+")
_KRAMDOWN_ATTR = re.compile(r"\{:[^}\n]*\}")
_LIQUID = re.compile(r"\{%.*?%\}|\{\{.*?\}\}")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~<>])")


def markdown_inline_text(text: str) -> str:
    """Inline Markdown (and stray inline HTML) reduced to its visible text on one line."""
    if "{" in text:
        text = _LIQUID.sub("", _KRAMDOWN_ATTR.sub("", text))
    if "!" in text:
        text = IMAGE.sub("", text)
    if "[" in text:
        text = _LINK.sub(r"\1", text)
        text = _REF_LINK.sub(r"\1", text)
    if "<" in text:
        text = _AUTOLINK.sub(r"\1", text)
        text = _HTML_TAG.sub("", text)
    if "`" in text:
        text = _CODE.sub(r"\1", text)
    if "*" in text or "__" in text:
        text = _STRONG.sub(r"\2", text)
        text = _EMPHASIS.sub(r"\1", text)
    if "~~" in text:
        text = _STRIKE.sub(r"\1", text)
    if "\\" in text:
        text = _ESCAPE.sub(r"\1", text)
    if "&" in text:
        text = html.unescape(text)
    return clean_line(text)
