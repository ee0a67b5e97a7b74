"""config.yaml: validated at start-up; a bad key stops start-up with its dotted path."""

from __future__ import annotations

import os
import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
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

DEFAULT_DATABASE_URL = "sqlite:///digest.db"
DEFAULT_BASE_URL = "https://api.telegram.org/bot"
ENV_TOKEN = "DIGESTBOT_TOKEN"
ENV_DATABASE_URL = "DIGESTBOT_DATABASE_URL"

_INTERVAL = re.compile(r"^every\s+(\d+)\s*([smhd])$")
_QUIET = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


class _Strict(BaseModel):
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
    from apscheduler.triggers.cron import CronTrigger  # local: import cost only when validating

    if len(expr.split()) != 5:
        raise ValueError(
            f"{expr!r} is not a cron expression: it needs 5 fields (minute hour day month weekday); "
            "example: '0 9 * * *' for 09:00 every day, or 'every 2h'"
        )
    try:
        CronTrigger.from_crontab(expr, timezone=ZoneInfo(timezone))
    except (ValueError, KeyError) as exc:
        raise ValueError(
            f"{expr!r} is not a valid cron expression ({exc}); example: '30 8,18 * * 1-5' for 08:30 and "
            "18:30 on weekdays"
        ) from None
    return expr


def parse_quiet_hours(spec: str) -> tuple[time, time]:
    """('23:00-07:00') -> (time(23, 0), time(7, 0)); ValueError when malformed."""
    match = _QUIET.match(spec.strip())
    if not match:
        raise ValueError(f"quiet hours {spec!r} must look like '23:00-07:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"quiet hours {spec!r} has an hour or minute out of range")
    return time(h1, m1), time(h2, m2)


class DatabaseConfig(_Strict):
    url: str = DEFAULT_DATABASE_URL

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return value


class ArchiveConfig(_Strict):
    paths: list[str] = Field(default_factory=lambda: ["./archive"])
    max_document_bytes: int = Field(default=20 * 1024 * 1024, gt=0)


class TelegramConfig(_Strict):
    token: SecretStr = SecretStr("")
    base_url: str = DEFAULT_BASE_URL
    base_file_url: str | None = None
    admins: list[int] = Field(default_factory=list)
    poll_commands: bool = True
    request_timeout: float = Field(default=20.0, gt=0)


class LimitsConfig(_Strict):
    global_per_second: float = Field(default=30, gt=0)
    channel_per_minute: float = Field(default=20, gt=0)


class PublishConfig(_Strict):
    lease_seconds: int = Field(default=120, ge=5)
    max_attempts: int = Field(default=8, ge=1)
    backoff_seconds: float = Field(default=5.0, ge=0)
    backoff_max_seconds: float = Field(default=600.0, ge=0)
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    # Requests in flight at once. A crash can leave at most this many posts uncertain.
    concurrency: int = Field(default=1, ge=1, le=32)
    drain_interval_seconds: float = Field(default=5.0, gt=0)


class SelectionConfig(_Strict):
    formats: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    since: date | None = None
    until: date | None = None
    order: Literal["oldest", "newest", "shuffle"] = "oldest"
    seed: int = 0


class TemplatesConfig(_Strict):
    single: str | None = None
    digest: str | None = None
    photo: str | None = None


class ChannelConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
    chat_id: str | int
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

    @field_validator("chat_id")
    @classmethod
    def _chat_id(cls, value: str | int) -> str | int:
        if isinstance(value, int):
            return value
        value = value.strip()
        if re.fullmatch(r"-?\d+", value):
            return int(value)
        if not re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", value):
            raise ValueError("must be a numeric chat id (channels start with -100) or an @username")
        return value

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


class CommentatorConfig(_Strict):
    enabled: bool = False
    url: str = ""
    model: str = ""
    api_key: SecretStr = SecretStr("")
    timeout: float = Field(default=20.0, gt=0)
    prompt: str = "用一句话（不超过 60 字）以资深技术编辑的口吻点评这条新闻："


class Config(_Strict):
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    commentator: CommentatorConfig = Field(default_factory=CommentatorConfig)
    channels: list[ChannelConfig] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _unique_channels(self) -> Config:
        seen: set[str] = set()
        for channel in self.channels:
            if channel.name in seen:
                raise ValueError(f"channel name {channel.name!r} is used twice")
            seen.add(channel.name)
        return self

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)

    @property
    def token(self) -> str:
        return self.telegram.token.get_secret_value()


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


def config_from_mapping(data: dict[str, Any], *, source: str = "config") -> Config:
    """Validate a mapping; ConfigError names every bad key path."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            path = _key_path(loc, data) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            lines.append(f"{path}: {message}")
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(lines)) from None


def load_config(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> Config:
    """Read config.yaml (or the defaults when path is None), then apply the environment overrides."""
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
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
        data = loaded
    if env.get(ENV_TOKEN):
        data.setdefault("telegram", {})
        if isinstance(data["telegram"], dict):
            data["telegram"]["token"] = env[ENV_TOKEN]
    if env.get(ENV_DATABASE_URL):
        data.setdefault("database", {})
        if isinstance(data["database"], dict):
            data["database"]["url"] = env[ENV_DATABASE_URL]
    config = config_from_mapping(data, source=source)
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    check_templates(config, base)
    return config


def check_templates(config: Config, base: Path) -> None:
    """Resolve template overrides against the config file's folder and compile them now.

    A broken template stops start-up (TemplateError names the file and line), not the first post.
    """
    from digests.formatting.blurb import BlurbFormatter

    for channel in config.channels:
        templates = channel.templates
        for name in ("single", "digest", "photo"):
            value = getattr(templates, name)
            if value and not Path(value).is_absolute():
                setattr(templates, name, str(base / value))
        if templates.single or templates.digest or templates.photo:
            BlurbFormatter(channel)
