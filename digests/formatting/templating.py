"""Jinja2 templates of posts: read from files, compiled in a sandbox whose output is Telegram HTML.

Every ``{{ value }}`` is cleaned and escaped for Telegram; errors are reported against the
template's file and line, as TemplateError.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from digests.errors import TemplateError
from digests.formatting.links import telegram_href
from digests.formatting.telegram_html import escape_text, telegram_safe

TEMPLATE_DIR = Path(__file__).with_name("templates")

_MANY_NEWLINES = re.compile(r"\n{3,}")


def load_templates(paths: Mapping[str, str | Path | None]) -> dict[str, jinja2.Template]:
    """Each named template compiled: the file at its path, or the built-in ``<name>.j2`` for None.

    Raises:
        TemplateError: a file is unreadable or does not compile; the message names file and line.
    """
    sources = {name: _read_template(Path(path) if path else TEMPLATE_DIR / f"{name}.j2")
               for name, path in paths.items()}
    env = _make_environment(_MemoryLoader(sources))
    templates: dict[str, jinja2.Template] = {}
    for name, (_source, filename) in sources.items():
        try:
            templates[name] = env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {exc.filename or filename} line {exc.lineno}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise _template_error(filename, exc) from None
    return templates


def template_filename(template: jinja2.Template) -> str:
    """The file a template was read from (what error messages name)."""
    return template.filename or template.name or ""


def render_template(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """The template's output, tidied; any failure is a TemplateError naming the template's line."""
    filename = template_filename(template)
    try:
        markup = _tidy(template.render(**context))
    except Exception as exc:  # a template may fail in any way; report it against its line
        raise _template_error(filename, exc) from None
    return markup


class _MemoryLoader(jinja2.BaseLoader):
    """Serves the sources ``load_templates`` read, under their names ("single", "digest", "photo")."""

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


def _read_template(path: Path) -> tuple[str, str]:
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TemplateError(f"template {path}: cannot read it: {reason}") from None
