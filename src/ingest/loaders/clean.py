"""Text made safe once, for every loader, right after decoding.

Whatever a file decodes to, what is stored and embedded is text every later
step can hold: PostgreSQL refuses NUL in ``text``, an unpaired surrogate
cannot be encoded as UTF-8 (a chunk's id hashes its UTF-8 bytes), and other
control characters are noise to a reader and to the models. A declared
charset can produce any of them from innocent-looking bytes (UTF-7 turns
``+AAA-`` into NUL), so they are removed after decoding, not only checked
for in the raw bytes.
"""

from __future__ import annotations

import codecs
import re

# C0 controls but tab, line feed and carriage return; DEL and the C1
# controls; every surrogate (in a Python string, one is always unpaired);
# and the two non-characters U+FFFE/U+FFFF.
_UNSAFE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Vertical tab and form feed (a PDF's page break) separate lines.
_BREAKS = re.compile("[\x0b\x0c]")

# Charsets a page may declare: each reads ASCII bytes as ASCII, so the
# declaration that named it was read correctly, and none is stateful. UTF-7,
# UTF-16/32 and the ISO-2022 family are refused: a declaration readable as
# ASCII cannot be right about them, and they can smuggle in any character.
_ASCII_COMPATIBLE = frozenset(
    [
        "ascii",
        "utf-8",
        "big5",
        "big5hkscs",
        "cp437",
        "cp850",
        "cp852",
        "cp866",
        "cp874",
        "cp932",
        "cp949",
        "cp950",
        "euc_jp",
        "euc_kr",
        "gb2312",
        "gbk",
        "gb18030",
        "koi8-r",
        "koi8-u",
        "mac-cyrillic",
        "mac-roman",
        "shift_jis",
        "tis-620",
        *(f"cp125{n}" for n in range(9)),
        *(f"iso8859-{n}" for n in range(1, 17) if n != 12),
    ]
)


def clean(text: str) -> str:
    """``text`` without the characters no later step can hold."""
    return _UNSAFE.sub("", _BREAKS.sub("\n", text))


def allowed_charset(declared: str) -> str | None:
    """The Python codec for a declared charset, if it is one a document may
    use; None for an unknown or refused one."""
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        return None
    return name if name in _ASCII_COMPATIBLE else None
