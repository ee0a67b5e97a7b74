"""config.yaml's core sections: validated at start-up; a bad key stops start-up with its dotted path.

The bot's own sections and rules (telegram, limits, what a chat id may be) are in bot/config.py,
which builds the whole file's config over this one.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping, Sequence
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from digests.errors import ConfigError
from digests.source_config import FetchConfig, ProxyConfig, SourceConfig, unique_source_names

DEFAULT_DATABASE_URL = "sqlite:///digest.db"

C = TypeVar("C", bound=BaseModel)
_INTERVAL = re.compile(r"^every\s+(\d+)\s*([smhd])$")
_QUIET = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


class StrictModel(BaseModel):
    """A config section: an unknown key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=False)


def parse_interval(expr: str) -> int | None:
    """Seconds of an ``every N[smhd]`` schedule entry, or None when it is not one."""
    match = _INTERVAL.match(expr.strip())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2)
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def validate_schedule_entry(expr: str, timezone: str = "UTC") -> str:
    """The entry, stripped, if it is a 5-field cron expression or ``every N[smhd]``.

    Raises ValueError with an explanation and an example otherwise.
    """
    expr = " ".join(expr.split())
    seconds = parse_interval(expr)
    if seconds is not None:
        if seconds < 60:
            raise ValueError(f"interval {expr!r} is shorter than a minute; example: 'every 30m'")
        return expr
    if len(expr.split()) != 5:
        raise ValueError(
            f"{expr!r} is not a cron expression: it needs 5 fields (minute hour day month weekday); "
            "example: '0 9 * * *' for 09:00 every day, or 'every 2h'"
        )
    try:
        _check_crontab(expr, timezone)
    except (ValueError, KeyError) as exc:
        raise ValueError(
            f"{expr!r} is not a valid cron expression ({exc}); example: '30 8,18 * * 1-5' for 08:30 and "
            "18:30 on weekdays"
        ) from None
    return expr


@functools.lru_cache(maxsize=4096)
def _check_crontab(expr: str, timezone: str) -> None:
    """Raises what APScheduler does for a bad entry. Cached: every channel's settings are validated
    each time they are read (settings_of), and compiling the trigger was most of that."""
    from apscheduler.triggers.cron import CronTrigger  # local: import cost only when validating

    CronTrigger.from_crontab(expr, timezone=ZoneInfo(timezone))


def parse_quiet_hours(spec: str) -> tuple[time, time]:
    """('23:00-07:00') -> (time(23, 0), time(7, 0)); ValueError when malformed."""
    match = _QUIET.match(spec.strip())
    if not match:
        raise ValueError(f"quiet hours {spec!r} must look like '23:00-07:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"quiet hours {spec!r} has an hour or minute out of range")
    return time(h1, m1), time(h2, m2)


class DatabaseConfig(StrictModel):
    url: str = DEFAULT_DATABASE_URL

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return value


class ArchiveConfig(StrictModel):
    paths: list[str] = Field(default_factory=lambda: ["./archive"])
    max_document_bytes: int = Field(default=20 * 1024 * 1024, gt=0)


class PublishConfig(StrictModel):
    lease_seconds: int = Field(default=120, ge=5)
    max_attempts: int = Field(default=8, ge=1)
    backoff_seconds: float = Field(default=5.0, ge=0)
    backoff_max_seconds: float = Field(default=600.0, ge=0)
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    # Requests in flight at once. A crash can leave at most this many posts uncertain.
    concurrency: int = Field(default=1, ge=1, le=32)
    drain_interval_seconds: float = Field(default=5.0, gt=0)


class SelectionConfig(StrictModel):
    formats: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    since: date | None = None
    until: date | None = None
    order: Literal["oldest", "newest", "shuffle"] = "oldest"
    seed: int = 0


class TemplatesConfig(StrictModel):
    single: str | None = None
    digest: str | None = None
    photo: str | None = None


class ChannelConfig(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
    chat_id: str | int  # where the channel's posts go; bot/config.py holds the rules for it
    timezone: str = "Asia/Shanghai"
    schedule: list[str] = Field(default_factory=lambda: ["0 9 * * *"])
    quiet_hours: str | None = None
    per_slot: int = Field(default=3, ge=1, le=50)
    mode: Literal["single", "digest"] = "single"
    photo: bool = False
    link_preview: bool = False
    silent: bool = False
    select: SelectionConfig = Field(default_factory=SelectionConfig)
    commentary_policy: Literal["publish", "hold"] = "publish"
    # A sent post whose items changed in the archive: edit the message, or leave it as sent.
    on_change: Literal["edit", "ignore"] = "edit"
    # A sent post whose items left the archive: keep it, or delete it (Telegram allows 48 hours).
    on_remove: Literal["keep", "delete"] = "keep"
    backlog: Literal["now", "archive"] = "archive"
    digest_title: str = "硬核观察"
    summary_length: int = Field(default=300, ge=40, le=3000)
    commentary_label: str = "老王点评"
    hashtags: bool = True
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; example: Asia/Shanghai") from None
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quiet_hours(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if not value:
            raise ValueError("at least one cron expression or 'every N[smhd]' is needed")
        timezone = info.data.get("timezone", "UTC")
        return [validate_schedule_entry(entry, timezone) for entry in value]


class CommentatorConfig(StrictModel):
    enabled: bool = False
    url: str = ""
    model: str = ""
    api_key: SecretStr = SecretStr("")
    timeout: float = Field(default=20.0, gt=0)
    prompt: str = "用一句话（不超过 60 字）以资深技术编辑的口吻点评这条新闻："


class Config(StrictModel):
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    commentator: CommentatorConfig = Field(default_factory=CommentatorConfig)
    channels: Sequence[ChannelConfig] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _unique_channels(self) -> Config:
        seen: set[str] = set()
        for channel in self.channels:
            if channel.name in seen:
                raise ValueError(f"channel name {channel.name!r} is used twice")
            seen.add(channel.name)
        unique_source_names(self.sources)
        return self

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)


def _key_path(loc: tuple[Any, ...], data: Any) -> str:
    """pydantic's location as a config.yaml key path: channels[0].schedule -> channels[main].schedule."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            label = str(part)
            if isinstance(node, list) and 0 <= part < len(node) and isinstance(node[part], dict):
                name = node[part].get("name")
                if name:
                    label = f"{part}:{name}"
            parts[-1:] = [f"{parts[-1]}[{label}]"] if parts else [f"[{label}]"]
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        else:
            parts.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts)


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The config section (model class) a field holds, itself or in a list or Optional; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The section at a key path (list indexes skipped), or None when the path leaves the model."""
    node: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = node.model_fields.get(part) if node is not None else None
        node = model_in(field.annotation) if field is not None else None
        if node is None:
            return None
    return node


def near_miss(word: str, choices: Sequence[str]) -> str | None:
    """The one choice a misspelt word most likely meant, if any is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return close[0] if close else None


def _unknown_key(model: type[BaseModel], loc: Sequence[Any]) -> str:
    section = model_at(model, loc[:-1])
    meant = near_miss(str(loc[-1]), list(section.model_fields)) if section is not None and loc else None
    return f"unknown key; did you mean {meant}?" if meant else "unknown key"


def _origin(loc: Sequence[Any], origins: Mapping[tuple[Any, ...], str]) -> str | None:
    """The environment variable (or secret file) a key's value came from, if not from the file."""
    for end in range(len(loc), 0, -1):
        if tuple(loc[:end]) in origins:
            return origins[tuple(loc[:end])]
    return None


# How a variable spells what a value should be; a config file shows it by its layout.
_SHAPES = {"list_type": "'[a, b]'", "dict_type": "'{key: value}'", "model_type": "'{key: value}'"}


def _section_origins(loc: tuple[Any, ...], data: Any, origins: Mapping[tuple[Any, ...], str]) -> str:
    """Which variables put keys in a section that lacks one: the reason a section is there at all."""
    section = loc[:-1]
    given = sorted({label for path, label in origins.items() if path[:len(section)] == section and path != section})
    return f"; {_key_path(section, data)} gets keys from {', '.join(given)}" if section and given else ""


def parse_config(model: type[C], data: dict[str, Any], *, source: str = "config",
                 sections: Sequence[str] = (), origins: Mapping[tuple[Any, ...], str] | None = None) -> C:
    """Validate a mapping as model; ConfigError names every bad key path.

    The errors are listed section by section in the order of `sections` when given (else in the
    model's field order); unknown sections come last. `origins` maps a key path to the
    environment variable that set it: such errors name the variable too.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        if sections:
            def section_rank(error: Any) -> int:
                first = error["loc"][0] if error["loc"] else None
                return sections.index(first) if first in sections else len(sections)

            errors = sorted(errors, key=section_rank)
        lines = []
        for error in errors:
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            path = _key_path(loc, data) or "(top level)"
            origin = _origin(loc, origins or {})
            if origin:
                path = f"{origin} ({path})"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = _unknown_key(model, loc)
            elif origin and error["type"] in _SHAPES:
                message += f" (in YAML or JSON: {_SHAPES[error['type']]})"
            elif error["type"] == "missing" and origins:
                message += _section_origins(loc, data, origins)
            lines.append(f"{path}: {message}")
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None


def config_from_mapping(data: dict[str, Any], *, source: str = "config") -> Config:
    """The core sections of a mapping, validated; ConfigError names every bad key path."""
    return parse_config(Config, data, source=source)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a config.yaml holds; ConfigError when it cannot be read or is not a mapping."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of sections")
    return loaded
