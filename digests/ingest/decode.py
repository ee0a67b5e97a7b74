"""Decoding a document's bytes: UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030/GBK."""

from __future__ import annotations

from digests.errors import ParseError


def decode_document(data: bytes) -> str:
    """Text of a document: UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030/GBK."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ParseError("not valid UTF-16 text") from None
    if b"\x00" in data[:8192]:
        raise ParseError("binary data, not a text document")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise ParseError("binary data, not text in UTF-8 or GB18030/GBK") from None
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\r\n\t")
    if controls > 8:
        raise ParseError("binary data, not a text document")
    return text
