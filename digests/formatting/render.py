"""Items of a slot -> the posts to send, with each channel's formatter (cached per settings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from digests.config import ChannelConfig, Config
from digests.formatting.blurb import BlurbConfig, BlurbFormatter
from digests.items import ItemView


@dataclass(slots=True)
class RenderedPost:
    html: str
    photo: str | None
    item_ids: list[int]


# render(views, settings, digest_number) -> posts: what planning asks of formatting.
Renderer = Callable[[Sequence[ItemView], ChannelConfig, int | None], list[RenderedPost]]


def formatter_for(settings: ChannelConfig, cache: dict[BlurbConfig, BlurbFormatter] | None = None) -> BlurbFormatter:
    """The channel's formatter; a bad template raises TemplateError naming file and line."""
    blurb_config = BlurbConfig.from_channel(settings)
    if cache is None:
        return BlurbFormatter(blurb_config)
    formatter = cache.get(blurb_config)
    if formatter is None:
        formatter = cache[blurb_config] = BlurbFormatter(blurb_config)
    return formatter


def make_renderer() -> Renderer:
    cache: dict[BlurbConfig, BlurbFormatter] = {}

    def render(views: Sequence[ItemView], settings: ChannelConfig, number: int | None) -> list[RenderedPost]:
        formatter = formatter_for(settings, cache)
        if settings.mode == "digest":
            messages = formatter.format_digest(list(views), number)
        elif settings.photo:
            messages = [formatter.format_photo(view) for view in views]
        else:
            messages = [formatter.format_single(view) for view in views]
        return [RenderedPost(m.html, m.photo, [int(i) for i in m.item_ids if i is not None]) for m in messages]

    return render


def check_templates(config: Config, config_path: str | Path | None) -> None:
    """Resolve template overrides against the config file's folder (else the working directory), compile them now.

    A broken template stops start-up (TemplateError names the file and line), not the first post.
    """
    base = Path(config_path).resolve().parent if config_path is not None else Path.cwd()
    for channel in config.channels:
        templates = channel.templates
        for name in ("single", "digest", "photo"):
            value = getattr(templates, name)
            if value and not Path(value).is_absolute():
                setattr(templates, name, str(base / value))
        if templates.single or templates.digest or templates.photo:
            BlurbFormatter(channel)
