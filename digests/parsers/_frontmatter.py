"""YAML front matter shared by the linux.cn and Jekyll formats."""

from __future__ import annotations

import re
from typing import Any

import yaml

from digests.errors import ParseError

try:  # the C loader is ~8x faster; fall back when libyaml is missing
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

_FENCE = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)
# A later fence line, found by its newline: re skips ahead to each newline instead of trying
# every position for ^, several times faster over a long front matter.
_CLOSING_FENCE = re.compile(r"\n---[ \t]*\r?$", re.MULTILINE)
UNCLOSED = "front matter is not closed (no closing ---)"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG, _SEQ_TAG, _MAP_TAG = (_Loader.DEFAULT_SCALAR_TAG, _Loader.DEFAULT_SEQUENCE_TAG,
                                _Loader.DEFAULT_MAPPING_TAG)
# The safe loader's implicit types (null, bool, int, float, timestamp ...) by first character.
_IMPLICIT = {first: tuple(resolvers) + tuple(_Loader.yaml_implicit_resolvers.get(None, ()))
             for first, resolvers in _Loader.yaml_implicit_resolvers.items() if first is not None}
# Tags of short plain scalars already resolved: keys and values such as `title`, `false`, `''`
# repeat in every front matter of an archive. Bounded; a full cache just stops growing.
_PLAIN_TAGS: dict[str, str] = {}
_PLAIN_TAGS_MAX, _PLAIN_TAG_CHARS = 4096, 32


class _KeysLoader(_Loader):  # type: ignore[misc]
    """Builds Python values for the listed top-level keys only; the rest is parsed, not built.

    A linux.cn article's front matter is mostly its reader comments, which no parser reads:
    skipping them, with a leaner resolve(), takes 40% off its YAML cost (syntax errors anywhere
    still fail; a value never built cannot).
    """

    keys: frozenset[str] = frozenset()

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        # PyYAML's resolve() without its path-resolver machinery (a safe loader has none); it runs
        # for every scalar of the front matter, skipped keys included.
        if kind is yaml.ScalarNode:
            if implicit[0]:
                tag = _PLAIN_TAGS.get(value)
                if tag is None:
                    tag = next((tag for tag, pattern in _IMPLICIT.get(value[:1], ()) if pattern.match(value)),
                               _STR_TAG)
                    if len(value) <= _PLAIN_TAG_CHARS and len(_PLAIN_TAGS) < _PLAIN_TAGS_MAX:
                        _PLAIN_TAGS[value] = tag
                return tag
            return _STR_TAG
        return _SEQ_TAG if kind is yaml.SequenceNode else _MAP_TAG

    def construct_document(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return super().construct_document(node)
        node.value = [
            (key, value) for key, value in node.value
            if not isinstance(key, yaml.ScalarNode) or key.value in self.keys or key.tag == _MERGE_TAG
        ]
        if node.tag != _MAP_TAG or any(key.tag != _STR_TAG for key, _ in node.value):
            return super().construct_document(node)  # a !!set, a merge, a complex key: PyYAML's way
        # Plain string keys (always, in practice): the dict is built here, string values taken as
        # they are, others built one by one (anchors shared between two values give equal copies);
        # PyYAML's per-node dispatch cost more than the rest of the keys' work.
        build = super().construct_document
        return {
            key.value: value.value if isinstance(value, yaml.ScalarNode) and value.tag == _STR_TAG else build(value)
            for key, value in node.value
        }


_LOADERS: dict[frozenset[str], type] = {}


def _loader(keys: frozenset[str] | None) -> type:
    if keys is None:
        return _Loader
    loader = _LOADERS.get(keys)
    if loader is None:
        loader = _LOADERS[keys] = type("KeysLoader", (_KeysLoader,), {"keys": keys})
    return loader


def has_front_matter(text: str) -> bool:
    """True when the text opens with a ``---`` fence."""
    return text.startswith("---") and bool(_FENCE.match(text))


def front_matter_bounds(text: str) -> tuple[int, int, int] | None:
    """(start, end, body) offsets of the front matter between its fences, None when unclosed.

    ``text[start:end]`` is the YAML (from the newline ending the opening fence line to the one
    before the closing fence), ``text[body:]`` what follows the closing fence line. The text must
    open with a fence (has_front_matter).
    """
    first = _FENCE.match(text)
    if first is None:
        return None
    closing = _CLOSING_FENCE.search(text, first.end())
    if closing is None:
        return None
    return first.end(), closing.start() + 1, closing.end()


def split_front_matter(text: str, keys: frozenset[str] | None = None) -> tuple[dict[str, Any], str]:
    """(front matter mapping, body) of a document that opens with ``---``; with keys, only those.

    Raises ParseError naming the problem (unclosed fence, broken YAML, not a mapping).
    """
    if not has_front_matter(text):
        raise ParseError("no YAML front matter (the document must open with ---)")
    bounds = front_matter_bounds(text)
    if bounds is None:
        raise ParseError(UNCLOSED)
    start, end, body_start = bounds
    raw = text[start:end]
    try:
        meta = yaml.load(raw, Loader=_loader(keys))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParseError(f"broken YAML front matter{where}: {problem}") from None
    except (ValueError, OverflowError, UnicodeError, RecursionError) as exc:
        # PyYAML's constructors raise these for values like `date: 2020-13-45` or `!!int 0x`
        raise ParseError(f"broken YAML front matter: {exc.__class__.__name__}: {exc}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ParseError("front matter is not a mapping of keys to values")
    return meta, text[body_start:].lstrip("\r\n")
