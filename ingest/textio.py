"""Decode text files whatever encoding they arrived in.

Chinese companies still keep GBK/GB18030 files, and Windows tools write UTF-16 or UTF-8 with a
byte-order mark. Generic detectors (chardet, charset-normalizer) confuse short GBK text with
Latin code pages, so the order here is explicit: BOMs, strict UTF-8, UTF-16 without BOM (many
NUL bytes), then GB18030 (a superset of GBK and GB2312), and only then a detector.
"""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UndecodableText(ValueError):
    """The bytes are not text in any encoding we recognise."""


def detect_encoding(data: bytes) -> str:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    sample = data[:4096]
    if sample and sample.count(b"\x00") > len(sample) // 4:
        # Text in UTF-16 without a BOM: ASCII characters leave a NUL in every other byte.
        zeros_at_odd = sum(1 for i in range(1, len(sample), 2) if sample[i] == 0)
        return "utf-16-le" if zeros_at_odd > len(sample) // 4 else "utf-16-be"
    try:
        data.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise UndecodableText("not text in UTF-8, UTF-16, GB18030 or any detectable encoding")
    return best.encoding


def decode_text(data: bytes) -> str:
    """Decode `data` to str, normalising line ends."""
    text = data.decode(detect_encoding(data))
    if "\x00" in text:
        raise UndecodableText("binary content (NUL characters) in a text file")
    return text.replace("\r\n", "\n").replace("\r", "\n")
