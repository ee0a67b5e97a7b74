"""`make messages`, last step: the English catalog says what its message ids say.

Message ids are the English text, so en's msgstr is always the msgid (pybabel update leaves new
entries empty or fuzzy): English wording changes in the source, and tests/test_i18n.py checks
that both catalogs match the source.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ENGLISH = Path(__file__).resolve().parent.parent / "bot" / "locale" / "en" / "LC_MESSAGES" / "digestbot.po"


def main(path: Path = ENGLISH) -> int:
    with path.open("rb") as po:
        catalog = read_po(po, locale="en")
    for message in catalog:
        if message.id:
            message.string = message.id
            message.flags.discard("fuzzy")
    with path.open("wb") as po:
        write_po(po, catalog, ignore_obsolete=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*(Path(arg) for arg in sys.argv[1:])))
