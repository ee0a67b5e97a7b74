"""The migrations this code knows, read once from the Alembic scripts beside it."""

from __future__ import annotations

from functools import cache

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from digests.store.db import MIGRATIONS


@cache
def _scripts() -> ScriptDirectory:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def head_revision() -> str | None:
    return _scripts().get_current_head()
