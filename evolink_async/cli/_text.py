"""Outside text (file names, server messages) made safe to show: no raw control characters.

A file name may hold a newline, a carriage return, ESC or DEL: printed raw it could forge a
``saved ... -> FAKE.png`` line or send escape sequences to the terminal. Every name and message
the CLI prints goes through :func:`printable` (plain and live output) or :func:`json_line`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

__all__ = ["json_line", "printable"]

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Controls (C0, DEL, C1), invisible formatting (bidi overrides), separators, unassigned, surrogates.
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Lone surrogates too: an undecodable file name (os.fsdecode's surrogateescape) cannot be encoded.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object) -> str:
    """``text`` with every control or invisible character written as a visible escape (``\\n``, ``\\x1b``).

    >>> printable("a\\nsaved -> FAKE.png")
    'a\\\\nsaved -> FAKE.png'
    """
    value = str(text)
    if value.isprintable():
        return value
    return "".join(
        _escape(ch) if ch in _ESCAPES or unicodedata.category(ch) in _UNSAFE else ch for ch in value
    )


def json_line(data: Any, *, sort_keys: bool = True) -> str:
    """One JSON line; besides what ``json`` escapes, DEL, C1 controls and bidi overrides too."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=sort_keys)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
