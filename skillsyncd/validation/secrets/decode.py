"""Bytes to text for the scanner, in windows that bound memory whatever the file size.

Every file is scanned up to the caller's size cap, in 1 MiB windows that overlap so no
match is cut and line numbers stay exact. UTF-16 and UTF-32 (with or without a BOM) and
BOM-marked UTF-8 are decoded; compressed media (images, audio, archives) is skipped by
its magic bytes; other binaries (SQLite, ...) are scanned for their printable ASCII runs,
as ``strings`` would, with values allowed to sit back to back.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator

from skillsyncd.validation.secrets.fingerprints import Hit
from skillsyncd.validation.secrets.scan import MAX_HITS_PER_FILE, scan_window

WINDOW_CHARS = 1024 * 1024  # scanned at a time; bounds memory whatever the file size
CONTEXT_CHARS = 4096  # overlap on each side of a window: longer than any match and its context
BINARY_SNIFF_BYTES = 8192

# Compressed or media formats: no readable text inside, skipped by their first bytes.
_MEDIA_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"RIFF",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"PK\x07\x08",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"\x28\xb5\x2f\xfd",
    b"ID3",
    b"OggS",
    b"fLaC",
    b"wOFF",
    b"wOF2",
    b"\x00\x00\x01\x00",
    b"II*\x00",
    b"MM\x00*",
    b"Rar!",
    b"\x00asm",
    b"%PDF",
)
# Printable ASCII plus tab and newline stays; every other byte becomes a space, so
# line numbers (newlines) survive and tokens break where the binary data is.
_PRINTABLE = bytes(b if (32 <= b < 127 or b in (9, 10)) else 32 for b in range(256))


def _is_media(data: bytes) -> bool:
    head = data[:16]
    return head.startswith(_MEDIA_MAGIC) or head[4:8] == b"ftyp"


def _wide(sample: bytes, width: int) -> str | None:
    """'le' or 'be' when ``sample`` is ASCII text in a ``width``-byte encoding without a BOM."""
    lanes = [sample[i::width] for i in range(width)]
    if not lanes[-1]:
        return None
    zero = [lane.count(0) / len(lane) for lane in lanes]
    if zero[0] <= 0.1 and all(z >= 0.7 for z in zero[1:]):
        return "le"
    if zero[-1] <= 0.1 and all(z >= 0.7 for z in zero[:-1]):
        return "be"
    return None


def _encoding(data: bytes) -> str | None:
    """How to read ``data``: a codec name, 'binary' (printable runs), or None (skip)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _is_media(data):
        return None
    head = data[:BINARY_SNIFF_BYTES]
    if b"\0" not in head:
        return "utf-8"
    sample = head[: 4096 - 4096 % 4]
    for width, name in ((4, "utf-32"), (2, "utf-16")):
        order = _wide(sample, width)
        if order is not None:
            return f"{name}-{order}"
    return "binary"


def is_binary(data: bytes) -> bool:
    """True when the bytes are not text in any encoding this scanner decodes."""
    return _encoding(data) in (None, "binary")


def _pieces(data: bytes, encoding: str) -> Iterator[str]:
    step = WINDOW_CHARS
    if encoding == "binary":
        for i in range(0, len(data), step):
            yield data[i : i + step].translate(_PRINTABLE).decode("latin-1")
        return
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for i in range(0, len(data), step):
        piece = decoder.decode(data[i : i + step], final=i + step >= len(data))
        if piece:
            yield piece


def scan_bytes(data: bytes) -> Iterator[Hit]:
    """Every file up to the caller's cap: text in any common encoding, binaries for their
    printable runs, media skipped; 1 MiB windows with overlapping context."""
    encoding = _encoding(data)
    if encoding is None:
        return
    glued = encoding == "binary"
    pieces = _pieces(data, encoding)
    current = next(pieces, None)
    tail = ""  # context before the current piece
    lines_done = 0  # newlines before the current piece
    budget = MAX_HITS_PER_FILE
    while current is not None and budget > 0:
        following = next(pieces, None)
        window = tail + current + (following[:CONTEXT_CHARS] if following else "")
        own = (len(tail), len(tail) + len(current))
        hits = scan_window(window, lines_done - tail.count("\n"), own, budget, glued)
        budget -= len(hits)
        yield from sorted(hits, key=lambda h: (h.line, h.rule))
        lines_done += current.count("\n")
        tail = (tail + current)[-CONTEXT_CHARS:]
        current = following
