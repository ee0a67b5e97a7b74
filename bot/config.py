"""The whole config.yaml: the core sections (digests.config) plus Telegram's (token, admins, limits, chat ids)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from digests.config import (
    ChannelConfig,
    Config,
    StrictModel,
    apply_env,
    parse_config,
    read_config_file,
    set_from_env,
)
from digests.formatting.render import check_templates
from digests.source_config import ProxyConfig, proxy_url

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
ENV_TOKEN = "DIGESTBOT_TOKEN"
# config.yaml's sections in the order config.example.yaml gives them: errors are listed in this order.
SECTIONS = ("database", "archive", "telegram", "limits", "publish", "sources", "fetch", "proxy", "commentator",
            "channels", "log_level")


class TelegramConfig(StrictModel):
    token: SecretStr = SecretStr("")
    base_url: str = DEFAULT_BASE_URL
    base_file_url: str | None = None
    admins: list[int] = Field(default_factory=list)
    poll_commands: bool = True
    request_timeout: float = Field(default=20.0, gt=0)


class LimitsConfig(StrictModel):
    global_per_second: float = Field(default=30, gt=0)
    channel_per_minute: float = Field(default=20, gt=0)


class BotProxyConfig(ProxyConfig):
    """``proxy:`` with the Telegram proxy too (``proxy: URL`` alone is used for both)."""

    telegram: str | None = None

    @field_validator("telegram")
    @classmethod
    def _telegram_scheme(cls, value: str | None) -> str | None:
        return proxy_url(value)


class BotChannelConfig(ChannelConfig):
    """A channel as config.yaml gives it: its chat_id must be one Telegram takes."""

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


class BotConfig(Config):
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    channels: list[BotChannelConfig] = Field(default_factory=list)
    proxy: BotProxyConfig = Field(default_factory=BotProxyConfig)

    @property
    def token(self) -> str:
        return self.telegram.token.get_secret_value()


def config_from_mapping(data: dict[str, Any], *, source: str = "config") -> BotConfig:
    """Validate a mapping; ConfigError names every bad key path."""
    return parse_config(BotConfig, data, source=source, sections=SECTIONS)


def load_config(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> BotConfig:
    """Read config.yaml (or the defaults when path is None), then apply the environment overrides."""
    env = dict(os.environ) if env is None else env
    data = read_config_file(path) if path is not None else {}
    if env.get(ENV_TOKEN):
        set_from_env(data, "telegram", "token", env[ENV_TOKEN])
    apply_env(data, env)
    config = config_from_mapping(data, source=str(path) if path is not None else "defaults")
    check_templates(config, path)
    return config
