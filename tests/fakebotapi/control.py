"""Watching and driving a fake in another process: its state as JSON, the control API.

``GET /control/state`` answers :func:`state_json`; ``POST /control/<name>`` calls the matching
FakeBotApi method with the JSON body as keyword arguments (see ``__main__``).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.fakebotapi.records import Records
from tests.fakebotapi.throttling import FloodControl
from tests.fakebotapi.transport import Reply

if TYPE_CHECKING:  # the fake drives this module, not the other way round
    from tests.fakebotapi.server import FakeBotApi

_STATE_MESSAGE_KEYS = frozenset(
    {
        "message_id",
        "method",
        "text",
        "caption",
        "plain_text",
        "date",
        "received_at",
        "fault",
        "deleted",
        "edit_date",
    }
)


def state_json(records: Records, flood: FloodControl) -> dict[str, Any]:
    """Recorded state as JSON-able data (what the standalone server dumps)."""
    with records.lock:
        chats: dict[str, Any] = {}
        for chat in records.chats.values():
            chats[str(chat.id)] = {
                **chat.to_json(),
                "kicked": chat.kicked,
                "messages": [
                    {k: v for k, v in m.to_json().items() if k in _STATE_MESSAGE_KEYS}
                    for m in records.sent
                    if m.chat_id == chat.id
                ],
            }
        return {
            "sent": [m.to_json() for m in records.sent],
            "chats": chats,
            "count_429": len(flood.throttled),
            "early_retries": flood.early_retries,
            "edits": [asdict(e) for e in records.edits],
            "deleted": [list(d) for d in records.deleted],
            "request_count": len(records.requests),
            "pending_updates": len(records.updates),
            "webhook": dict(records.webhook) if records.webhook else None,
        }


def write_state(target: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as JSON, atomically: a reader never sees half a file."""
    tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, target)


def _json_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in items}


class ControlApi:
    """The control endpoints of one fake; ``lock`` guards its rate limits while they change."""

    def __init__(self, fake: FakeBotApi, lock: threading.RLock) -> None:
        self.fake = fake
        self.lock = lock

    def answer(self, http_method: str, name: str, body: bytes) -> Reply:
        """The answer to ``<http_method> /control/<name>`` with a JSON object ``body``."""
        try:
            args = json.loads(body) if body else {}
            if not isinstance(args, dict):
                raise ValueError("control body must be a JSON object")
            result = self._call(http_method, name, args)
        except (ValueError, KeyError, TypeError) as err:
            return 400, {"ok": False, "error_code": 400, "description": f"control/{name}: {err}"}
        if result is None:
            return 404, {"ok": False, "error_code": 404, "description": f"no control endpoint {name!r}"}
        return 200, {"ok": True, "result": result}

    def _call(self, http_method: str, name: str, args: dict[str, Any]) -> Any:
        fake = self.fake
        if name == "state":
            return fake.state()
        if http_method != "POST":
            return None
        if name == "dump":
            return fake.dump_state(args.get("path"))
        if name == "inject":
            return asdict(fake.inject(**args), dict_factory=_json_dict)
        if name == "clear_faults":
            fake.clear_faults()
            return True
        if name == "channel":
            return fake.add_channel(**args).to_json()
        if name == "group":
            return fake.add_group(**args).to_json()
        if name == "user":
            return fake.add_user(**args).to_json()
        if name == "kick":
            fake.kick(args["chat"])
            return True
        if name == "unkick":
            fake.unkick(args["chat"])
            return True
        if name == "age_message":
            return fake.age_message(**args).message_id
        if name == "remove_message":
            fake.remove_message(**args)
            return True
        if name == "push_message":
            return fake.push_message(**args)
        if name == "limits":
            with self.lock:
                for key, value in args.items():
                    if not hasattr(fake.limits, key):
                        raise KeyError(key)
                    setattr(fake.limits, key, value)
                return asdict(fake.limits)
        return None
