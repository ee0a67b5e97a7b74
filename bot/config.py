"""The whole config.yaml: the core sections (digests.config) plus Telegram's (token, admins, limits, chat ids).

Every key may also come from the environment (bot/config_env.py): DIGESTBOT_<SECTION>__<KEY>.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from bot import config_env
from digests.chats import shared_chat_errors
from digests.config import ChannelConfig, Config, StrictModel, parse_config, read_config_file
from digests.errors import ConfigError
from digests.formatting.render import check_templates
from digests.source_config import ProxyConfig, proxy_url

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
ENV_CONFIG = config_env.CONFIG_PATH
ENV_TOKEN = "DIGESTBOT_TOKEN"  # also DIGESTBOT_TELEGRAM__TOKEN (bot/config_env.py ALIASES)
# Telegram's own rule for setWebhook's secret_token; token_urlsafe's alphabet is exactly this.
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_SECRET_EXAMPLE = "e.g. the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
WEBHOOK_PORTS = (443, 80, 88, 8443)  # the only ports Telegram's servers post updates to
# config.yaml's sections in the order config.example.yaml gives them: errors are listed in this order.
SECTIONS = ("database", "archive", "telegram", "limits", "publish", "server", "sources", "fetch", "proxy",
            "commentator", "channels", "log_level")


class WebhookConfig(StrictModel):
    """Telegram posts updates to url; the bot's server takes them on listen:port at path."""

    url: str
    listen: str = "127.0.0.1"  # behind a reverse proxy; 0.0.0.0 in a container
    port: int = Field(default=8443, ge=1, le=65535)
    path: str | None = None  # default: the url's path
    secret_token: SecretStr = Field(default=SecretStr(""), validate_default=True)

    @field_validator("url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{value!r} is not the public URL Telegram posts to; "
                             "example: https://bot.example.org/telegram")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret:
            raise ValueError("required: Telegram sends it with every update and the bot refuses updates "
                             f"without it; give 1-256 characters of A-Z a-z 0-9 _ - ({_SECRET_EXAMPLE}) "
                             "here or in DIGESTBOT_TELEGRAM__WEBHOOK__SECRET_TOKEN (or its _FILE)")
        if not _SECRET_TOKEN.fullmatch(secret):
            raise ValueError(f"may hold only A-Z a-z 0-9 _ - (1-256 characters), {_SECRET_EXAMPLE}")
        return value

    @model_validator(mode="after")
    def _default_path(self) -> WebhookConfig:
        path = self.path if self.path is not None else urlsplit(self.url).path
        self.path = "/" + path.lstrip("/")
        return self


class TelegramConfig(StrictModel):
    token: SecretStr = SecretStr("")
    base_url: str = DEFAULT_BASE_URL
    base_file_url: str | None = None
    admins: list[int] = Field(default_factory=list)
    poll_commands: bool = True  # takes updates (polling or webhook): exactly one worker of several
    request_timeout: float = Field(default=20.0, gt=0)
    webhook: WebhookConfig | None = None  # none: poll getUpdates

    @field_validator("webhook")
    @classmethod
    def _telegram_posts_there(cls, value: WebhookConfig | None, info: ValidationInfo) -> WebhookConfig | None:
        if value is None or info.data.get("base_url", DEFAULT_BASE_URL) != DEFAULT_BASE_URL:
            return value  # a local Bot API server posts anywhere
        parts = urlsplit(value.url)
        if parts.scheme != "https" or (parts.port or 443) not in WEBHOOK_PORTS:
            raise ValueError(f"url {value.url!r}: Telegram posts updates only to https:// on port 443, 80, 88 "
                             "or 8443; put a reverse proxy with TLS in front of listen and port")
        return value


class LimitsConfig(StrictModel):
    global_per_second: float = Field(default=30, gt=0)
    channel_per_minute: float = Field(default=20, gt=0)


class ServerConfig(StrictModel):
    """The HTTP endpoint of `digestbot run`: /healthz and /metrics (off unless enabled)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (tests)
    # A channel is stuck when a post has waited this long to be sent and nothing was sent meanwhile.
    stuck_after_minutes: float = Field(default=30, gt=0)
    # The running bot records that its scheduler runs this often; three missed beats are a stop.
    heartbeat_seconds: float = Field(default=30, gt=0)


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
    server: ServerConfig = Field(default_factory=ServerConfig)
    channels: list[BotChannelConfig] = Field(default_factory=list)
    proxy: BotProxyConfig = Field(default_factory=BotProxyConfig)

    @property
    def token(self) -> str:
        return self.telegram.token.get_secret_value()


def config_from_mapping(data: dict[str, Any], *, source: str = "config") -> BotConfig:
    """Validate a mapping; ConfigError names every bad key path (and both channels of a chat given twice)."""
    config = parse_config(BotConfig, data, source=source, sections=SECTIONS)
    # A chat's history is one: two names for it would post every item to it twice.
    shared = shared_chat_errors([(channel.name, channel.chat_id) for channel in config.channels])
    if shared:
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(shared))
    return config


def known_env_name(name: str) -> bool:
    """Whether the app reads this environment variable; the config keys' names come from BotConfig."""
    return config_env.known_name(BotConfig, name)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def load_config(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> BotConfig:
    """config.yaml (or the defaults when path is None) with the environment's keys over it."""
    env = dict(os.environ) if env is None else env
    data = read_config_file(path) if path is not None else {}
    layer = config_env.read_environment(BotConfig, env)
    source = str(path) if path is not None else "environment" if layer.data else "defaults"
    config = parse_config(BotConfig, _merged(data, layer.data), source=source, sections=SECTIONS,
                          origins=layer.origins)
    check_templates(config, path)
    return config
