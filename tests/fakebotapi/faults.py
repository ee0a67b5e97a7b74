"""Scripted failures, the fault plan tests write with ``FakeBotApi.inject``.

429 (with retry_after), 5xx, 403, 400 and a dropped connection hit before the method runs;
"drop_after_accept" and "delay" after it, so the message is recorded but the bot does not
get its answer (in time).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from http import HTTPStatus

from tests.fakebotapi.errors import ApiError
from tests.fakebotapi.records import Chat

FAULT_KINDS = frozenset({"429", "5xx", "403", "400", "drop_before", "drop_after_accept", "delay"})
# Faults that happen before the method runs (nothing recorded) and after it (message recorded).
PRE_FAULTS = frozenset({"429", "5xx", "403", "400", "drop_before"})
POST_FAULTS = frozenset({"drop_after_accept", "delay"})


@dataclass
class Fault:
    """A scripted failure; see :meth:`FakeBotApi.inject`."""

    kind: str
    methods: frozenset[str] | None = None
    chat_id: int | str | None = None
    times: int | None = 1
    retry_after: int = 1
    delay: float = 1.0
    status: int = 502
    probability: float = 1.0
    description: str | None = None
    hits: int = 0

    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


def check_kind(kind: str) -> None:
    """ValueError unless ``kind`` is one of :data:`FAULT_KINDS`."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")


class FaultPlan:
    """The faults scripted so far, in order; probabilities drawn from one seeded RNG."""

    def __init__(self, seed: int) -> None:
        self.rules: list[Fault] = []
        self._rng = random.Random(seed)

    def match(self, method: str, chat_key: int | str | None) -> Fault | None:
        """The first live rule for this call, if any (its ``hits`` are the caller's to count)."""
        for rule in self.rules:
            if rule.exhausted():
                continue
            if rule.methods is not None and method not in rule.methods:
                continue
            if rule.chat_id is not None and rule.chat_id != chat_key:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            return rule
        return None


def fault_error(fault: Fault, chat: Chat | None) -> ApiError:
    """The error answer of a "5xx", "403" or "400" fault on a call for ``chat``."""
    if fault.kind == "5xx":
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Server Error"
        return ApiError(fault.status, fault.description or phrase)
    if fault.kind == "403":
        reason = chat.forbidden_reason() if chat else "Forbidden: bot was kicked from the channel chat"
        return ApiError(403, fault.description or reason)
    return ApiError(400, fault.description or "Bad Request: injected fault")
