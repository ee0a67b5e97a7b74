"""What every `digestbot` command is handed: its arguments, the validated config and, lazily, the database."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bot.config import ENV_CONFIG, BotConfig, load_config
from digests.store.db import Database, open_database

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Context:
    """What every command needs: the validated config and, lazily, the database."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config_path = _config_path(args.config)
        self.config: BotConfig = load_config(self.config_path)
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_database(self.config.database.url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def _config_path(given: str | None) -> Path | None:
    """--config, else $DIGESTBOT_CONFIG, else ./config.yaml when present, else the defaults."""
    if given:
        return Path(given)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    local = Path("config.yaml")
    return local if local.is_file() else None
