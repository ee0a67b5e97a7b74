"""Routing one Bot API request: token and method from the path, then the checks in Telegram's order.

A path that is no ``/bot<token>/<method>`` or a malformed token gets 404, another bot's token 401,
as Telegram answers them. Then the chat's flood wait, then a scripted fault, then the method itself
(with its rate limits). Every request is logged as a RequestRecord before anything else, whatever
its answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakebotapi.errors import ApiError
from tests.fakebotapi.faults import PRE_FAULTS, Fault, FaultPlan, fault_error
from tests.fakebotapi.methods import HANDLERS, canonical_name
from tests.fakebotapi.records import Records, RequestRecord
from tests.fakebotapi.throttling import FloodControl, write_fingerprint
from tests.fakebotapi.transport import DROP, Drop, Reply
from tests.fakebotapi.wire import Call, decode_params, loggable

_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)/?$")
_TOKEN = re.compile(r"^(?P<bot_id>\d+):[A-Za-z0-9_-]+$")


class Dispatcher:
    """Answers Bot API requests against the records; ``on_accepted`` runs after each success."""

    def __init__(
        self, records: Records, flood: FloodControl, faults: FaultPlan, on_accepted: Callable[[], None]
    ) -> None:
        self.records = records
        self.flood = flood
        self.faults = faults
        self.on_accepted = on_accepted

    def answer(self, path: str, content_type: str, body: bytes, query: str) -> Reply | Drop:
        """The answer to ``POST /bot<token>/<method>``; DROP to close the connection instead."""
        match = _PATH.match(path)
        token = _TOKEN.match(match["token"]) if match else None
        if match is None or token is None:
            return 404, ApiError(404, "Not Found").payload()
        if match["token"] != self.records.token:
            return 401, ApiError(401, "Unauthorized").payload()
        bot_id = int(token["bot_id"])
        method = canonical_name(match["method"])
        received_at, now = time.time(), time.monotonic()
        try:
            params = decode_params(content_type, body, query)
        except ApiError as err:
            return err.status, err.payload()

        with self.records.changed:
            record = RequestRecord(method, received_at, loggable(params))
            self.records.requests.append(record)
            self.records.changed.notify_all()
            reply, late_fault = self._run(record, bot_id, params, received_at, now)

        # Outside the lock: the method's result stays recorded while its answer is lost or late.
        if late_fault is not None and late_fault.kind == "drop_after_accept":
            record.status = None
            return DROP
        if late_fault is not None and late_fault.kind == "delay":
            self.records.stopping.wait(late_fault.delay)
        return reply

    def _run(
        self, record: RequestRecord, bot_id: int, params: dict[str, Any], received_at: float, now: float
    ) -> tuple[Reply | Drop, Fault | None]:
        """(answer, the fault still due once it is sent) for a logged request."""
        method = record.method
        handler = HANDLERS.get(method)
        if handler is None:
            record.status = 404
            return (404, ApiError(404, f"Not Found: the fake Bot API has no method {method}").payload()), None

        chat_key = None
        if params.get("chat_id") not in (None, ""):
            chat_key = self.records.chat_key(params["chat_id"])
        fingerprint = write_fingerprint(method, params)
        if chat_key is not None and fingerprint is not None:
            wait = self.flood.wait_left(chat_key, fingerprint, now)
            if wait is not None:
                return self._throttle(record, chat_key, fingerprint, wait, "flood_wait"), None

        fault = self.faults.match(method, chat_key)
        if fault is not None and fault.kind in PRE_FAULTS:
            fault.hits += 1
            record.fault = fault.kind
            if fault.kind == "drop_before":
                return DROP, None
            if fault.kind == "429":
                return self._throttle(record, chat_key, fingerprint, fault.retry_after, "injected"), None
            error = fault_error(fault, self.records.chat(chat_key))
            record.status = error.status
            return (error.status, error.payload()), None

        call = Call(method, self.records.bot_user(bot_id), params, received_at, now)
        try:
            result = handler(self.records, call)
        except ApiError as err:
            if err.status == 429 and err.parameters:
                retry_after = err.parameters["retry_after"]
                return self._throttle(record, chat_key, fingerprint, retry_after, "rate_limit"), None
            record.status = err.status
            return (err.status, err.payload()), None
        if fault is not None:
            fault.hits += 1
            record.fault = fault.kind
            if isinstance(result, dict) and "message_id" in result and "chat" in result:
                stored = self.records.messages.get((result["chat"]["id"], result["message_id"]))
                if stored is not None:
                    stored.fault = fault.kind
        record.status = 200
        if chat_key is not None and fingerprint is not None:
            self.flood.accepted(chat_key, fingerprint)
        self.on_accepted()
        return (200, {"ok": True, "result": result}), fault

    def _throttle(
        self,
        record: RequestRecord,
        chat_key: int | str | None,
        fingerprint: str | None,
        seconds: float,
        reason: str,
    ) -> Reply:
        error = self.flood.throttle(record.method, chat_key, fingerprint, seconds, reason)
        record.status = 429
        return 429, error.payload()
