"""Source bytes to text: the one decoding that chunks, BM25 terms and content filters share.

Most code is UTF-8, but not all of it. Windows editors save UTF-16 with a
byte-order mark, which looks binary byte by byte (a NUL beside every ASCII
character), and older code is Latin-1 or Windows-1252, where decoding as UTF-8
with replacement turns ``café`` into ``caf\\ufffd``, an identifier nobody can
search for. So a byte-order mark picks the codec, and otherwise every byte that
is not valid UTF-8 is read as Windows-1252 on its own, which keeps the valid
UTF-8 of a file intact around one stray byte.
"""

from __future__ import annotations

import codecs

__all__ = ["UTF16_ENCODINGS", "bom_encoding", "decode_source"]

UTF16_ENCODINGS = ("utf-16-le", "utf-16-be")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def _single_byte_table() -> str:
    """Windows-1252 for each byte value; Latin-1 for the five bytes Windows-1252 leaves undefined."""
    chars = []
    for value in range(256):
        try:
            chars.append(bytes([value]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(value))
    return "".join(chars)


_CP1252 = _single_byte_table()


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(_CP1252[byte] for byte in exc.object[exc.start : exc.end]), exc.end


_FALLBACK = "localizer-cp1252"
codecs.register_error(_FALLBACK, _cp1252_fallback)


def bom_encoding(data: bytes) -> str | None:
    """The codec that a byte-order mark at the start of ``data`` announces, or None."""
    return next((encoding for bom, encoding in _BOMS if data.startswith(bom)), None)


def decode_source(data: bytes) -> str:
    """Text of a source file, never raising; the byte-order mark, if any, is dropped."""
    encoding = bom_encoding(data)
    if encoding in UTF16_ENCODINGS:
        return data[2:].decode(encoding, errors="replace")
    return data.decode(encoding or "utf-8", errors=_FALLBACK)
