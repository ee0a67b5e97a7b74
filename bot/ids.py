"""Numbers people type (command arguments, CLI ids, offsets): ASCII digits within the database's integer range.

``str.isdigit`` is no check: it takes '²' and '٣', which ``int`` refuses or reads as 3, and a number
of any length, which the database refuses (OverflowError in SQLite, an error in PostgreSQL).
"""

from __future__ import annotations

# Ids are INTEGER columns (digests/store/models.py); PostgreSQL's INTEGER is 32-bit signed, the
# narrower of the two backends, so no larger number can name a row on either.
MAX_ID = 2**31 - 1
_DIGITS = frozenset("0123456789")


class BadId(ValueError):
    """Text that is no id; ``digits`` says whether it was a number at all (then it was too large)."""

    def __init__(self, message: str, *, digits: bool) -> None:
        super().__init__(message)
        self.digits = digits


def parse_id(text: str, what: str = "ID") -> int:
    """The number ``text`` spells in ASCII digits, at most MAX_ID; BadId naming ``what`` otherwise."""
    if not text or not set(text) <= _DIGITS:
        raise BadId(f"{what} must be a number written with the digits 0-9, not {text!r}", digits=False)
    significant = text.lstrip("0")
    if len(significant) > len(str(MAX_ID)) or int(significant or "0") > MAX_ID:
        shown = text if len(text) <= 30 else text[:30] + "…"
        raise BadId(f"{what} {shown} is too large: at most {MAX_ID}", digits=True)
    return int(significant or "0")
