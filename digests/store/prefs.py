"""Users' preferences: the language a Telegram user chose for the bot's replies."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from digests.store.models import UserPref


def user_languages(session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    """The chosen language of each of these users who chose one."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    rows = session.execute(select(UserPref.user_id, UserPref.language).where(UserPref.user_id.in_(ids)))
    return {user_id: language for user_id, language in rows}


def set_user_language(session: Session, user_id: int, language: str | None) -> None:
    """Record a user's language; None forgets the choice (the user's Telegram language applies again)."""
    pref = session.get(UserPref, user_id)
    if language is None:
        if pref is not None:
            session.delete(pref)
        return
    if pref is None:
        session.add(UserPref(user_id=user_id, language=language))
    else:
        pref.language = language
