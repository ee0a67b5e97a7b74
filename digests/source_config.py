"""The ``sources:``, ``fetch:`` and ``proxy:`` sections of config.yaml (pure, like digests.config).

Self-contained (nothing from digests.config): digests.config imports these models into its root
Config, and an import back would be a cycle. The Telegram proxy is bot/config.py's.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from digests.source_locations import HTTP, PATH, Location, parse_location

_DURATION = re.compile(r"^(?:every\s+)?(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PROXY_SCHEMES = ("http://", "https://", "socks5://", "socks5h://")
DEFAULT_INTERVAL = "every 1h"


def interval_seconds(expr: str) -> int:
    """Seconds of ``every 30m`` (or just ``30m``; units s, m, h, d); ValueError otherwise."""
    match = _DURATION.match(" ".join(expr.split()))
    if match is None:
        raise ValueError(f"interval {expr!r} must look like 'every 30m' (units s, m, h, d)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 1:
        raise ValueError(f"interval {expr!r} must be at least one second")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    """One source: where it is (``url`` or ``path``), how often to look, what to take from it."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
    url: str | None = None
    path: str | None = None
    interval: str = DEFAULT_INTERVAL
    # Folders and git repositories: glob patterns of the files to read (relative paths; * crosses /).
    select: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)  # added to every item of the source
    enabled: bool = True

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        interval_seconds(value)
        return " ".join(value.split())

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags = [tag.strip() for tag in value]
        if any(not tag for tag in tags):
            raise ValueError("a tag may not be empty")
        return tags

    @model_validator(mode="after")
    def _where(self) -> SourceConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url: (http(s):// or git+…://) and path: (a local folder or file)")
        location = self.location
        if self.path is not None and location.kind != PATH:
            raise ValueError(f"path: {self.path!r} is a URL; write it as url:")
        if self.select and location.kind == HTTP:
            raise ValueError("select: applies to folders and git repositories, not to a URL")
        return self

    @property
    def location(self) -> Location:
        text = self.url if self.url is not None else self.path
        assert text is not None
        return parse_location(text)

    @property
    def interval_seconds(self) -> int:
        return interval_seconds(self.interval)

    @field_validator("url", "path")
    @classmethod
    def _parsable(cls, value: str | None) -> str | None:
        if value is not None:
            parse_location(value)
            return value.strip()
        return value


class FetchConfig(_Strict):
    """How sources are fetched: politeness, limits, and where git clones are kept."""

    user_agent: str = ""  # empty: "hardcore-digest/VERSION (digestbot feed fetcher)"
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    total_timeout: float = Field(default=120.0, gt=0)  # a server that drips bytes forever
    max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=5)
    concurrency: int = Field(default=8, ge=1, le=64)  # requests in flight, all hosts together
    per_host: int = Field(default=2, ge=1, le=16)
    max_failures: int = Field(default=10, ge=1)  # consecutive failures that switch a source off
    backoff_seconds: float = Field(default=60.0, ge=0)
    backoff_max_seconds: float = Field(default=86400.0, ge=0)
    lease_seconds: int = Field(default=900, ge=10)  # one worker refreshes a source at a time
    git_timeout: float = Field(default=600.0, gt=0)
    cache_dir: str = ".digestbot/sources"  # git clones; relative to the working directory
    poll_seconds: float = Field(default=1.0, gt=0, le=60)  # how often `run` looks for due sources


def proxy_url(value: str | None) -> str | None:
    """A proxy URL as given (None when empty); ValueError for a scheme httpx cannot use."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not value.startswith(_PROXY_SCHEMES):
        raise ValueError(f"proxy {value!r} must start with http://, https://, socks5:// or socks5h://")
    return value


class ProxyConfig(_Strict):
    """``proxy: URL`` for everything, or ``proxy: {fetch: URL}``; http(s) or socks5.

    bot/config.py adds ``telegram:``; one URL given alone then stands for every field.
    """

    fetch: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_for_all(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, str):
            return dict.fromkeys(cls.model_fields, data)
        return data

    @field_validator("fetch")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        return proxy_url(value)


def unique_source_names(sources: list[SourceConfig]) -> None:
    """ValueError when two sources share a name (their health and state are kept by name)."""
    seen: set[str] = set()
    for source in sources:
        if source.name in seen:
            raise ValueError(f"source name {source.name!r} is used twice")
        seen.add(source.name)

