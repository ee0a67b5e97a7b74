"""The fingerprint of what a post shows: its HTML and its photo, nothing else."""

from __future__ import annotations

import hashlib
import json


def content_hash(html: str, photo: str | None) -> str:
    """A hex digest that changes whenever the message's text or photo would."""
    return hashlib.sha256(json.dumps([html, photo], ensure_ascii=False).encode()).hexdigest()
