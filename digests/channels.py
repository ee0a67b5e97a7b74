"""A channel's settings: the database copy, what config.yaml changed in it, and changes validated.

The rows themselves (create, read, pause, reschedule) are in digests/store/channels.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from digests.config import ChannelConfig, validate_schedule_entry


class HasSettings(Protocol):
    @property
    def settings(self) -> Mapping[str, Any]: ...


def settings_of(channel: HasSettings) -> ChannelConfig:
    """The channel's effective settings (the database copy)."""
    return ChannelConfig.model_validate(channel.settings)


def settings_hash(settings: ChannelConfig) -> str:
    """A digest of the rules that decide which items a channel may take (cursor validity)."""
    relevant = settings.model_dump(mode="json", include={"select", "commentary_policy", "backlog"})
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def merged_from_file(settings: Mapping[str, Any], snapshot: Mapping[str, Any],
                     from_file: Mapping[str, Any]) -> dict[str, Any] | None:
    """The settings with the operator's edits to config.yaml applied, or None when there are none.

    The database copy is what runs: a key an admin changed through the bot keeps the admin's
    value until the operator edits that key in config.yaml, that is until the file's value
    differs from the snapshot of the file taken at the last sync.
    """
    merged = dict(settings)
    changed = False
    for key, value in from_file.items():
        if snapshot.get(key) != value:
            merged[key] = value
            changed = True
    return merged if changed else None


def changed_settings(settings: Mapping[str, Any], changes: Mapping[str, Any]) -> ChannelConfig:
    """The settings with changes applied; ValueError says what is wrong with them."""
    try:
        return ChannelConfig.model_validate({**settings, **changes})
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


def schedule_change(settings: Mapping[str, Any], entries: Sequence[str]) -> dict[str, Any]:
    """The change that replaces a schedule; ValueError explains a bad entry with an example."""
    timezone = settings.get("timezone", "Asia/Shanghai")
    return {"schedule": [validate_schedule_entry(entry, timezone) for entry in entries]}
