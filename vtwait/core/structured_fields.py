"""RFC 9651 structured fields, the part HTTP rate-limit fields use: a List of Items with parameters.

    parse_structured_list('"default";r=50;t=30')   # [('default', {'r': 50, 't': 30})]

A strict parser: a field that does not parse is ignored as a whole (RFC 9651 section 4.2), so the
function returns None instead of raising. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

__all__ = ["Item", "parse_structured_list"]


class _SyntaxError(ValueError):
    """A structured field that does not parse: the whole field is ignored (RFC 9651 4.2)."""


_NUMBER = re.compile(r"-?(\d{1,12}\.\d{1,3}|\d{1,15})(?![\d.])")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")

Item = tuple[Any, dict[str, Any]]  # a bare item and its parameters


def parse_structured_list(text: str | None) -> list[Item] | None:
    """An RFC 9651 List of Items with parameters, or None when it does not parse.

    Bare items come back as ``int``, ``float``, ``str`` (strings and tokens alike), ``bool`` or
    ``bytes``; a parameter without a value is ``True``. Inner lists are not supported (no
    rate-limit field uses them) and make the field unreadable, as any syntax error does.
    """
    if text is None:
        return None
    try:
        return _parse_list(text.strip(" \t"))
    except _SyntaxError:
        return None


def _parse_list(text: str) -> list[Item]:
    items: list[Item] = []
    pos = 0
    while pos < len(text):
        item, pos = _bare_item(text, pos)
        params, pos = _parameters(text, pos)
        items.append((item, params))
        pos = _skip(text, pos, " \t")
        if pos == len(text):
            return items
        if text[pos] != ",":
            raise _SyntaxError(f"expected ',' at {pos}")
        pos = _skip(text, pos + 1, " \t")
        if pos == len(text):
            raise _SyntaxError("trailing comma")
    return items


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _bare_item(text: str, pos: int) -> tuple[Any, int]:
    if pos >= len(text):
        raise _SyntaxError("missing item")
    char = text[pos]
    if char == '"':
        return _string(text, pos + 1)
    if char == "?":
        if text[pos + 1:pos + 2] in ("0", "1"):
            return text[pos + 1] == "1", pos + 2
        raise _SyntaxError("bad boolean")
    if char == ":":
        match = _BYTES.match(text, pos)
        if not match:
            raise _SyntaxError("bad byte sequence")
        try:
            return base64.b64decode(match.group(1), validate=True), match.end()
        except (binascii.Error, ValueError):
            raise _SyntaxError("bad base64 in byte sequence") from None
    match = _NUMBER.match(text, pos)
    if match:
        number = match.group(0)
        return (float(number) if "." in number else int(number)), match.end()
    match = _TOKEN.match(text, pos)
    if match:
        return match.group(0), match.end()
    raise _SyntaxError(f"unexpected {char!r} at {pos}")


def _string(text: str, pos: int) -> tuple[str, int]:
    out = []
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            if text[pos + 1:pos + 2] not in ('"', "\\"):
                raise _SyntaxError("bad escape")
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        elif " " <= char <= "~":
            out.append(char)
            pos += 1
        else:
            raise _SyntaxError("bad character in string")
    raise _SyntaxError("unterminated string")


def _parameters(text: str, pos: int) -> tuple[dict[str, Any], int]:
    params: dict[str, Any] = {}
    while pos < len(text) and text[pos] == ";":
        pos = _skip(text, pos + 1, " ")
        match = _KEY.match(text, pos)
        if not match:
            raise _SyntaxError(f"bad parameter key at {pos}")
        value: Any = True
        pos = match.end()
        if pos < len(text) and text[pos] == "=":
            value, pos = _bare_item(text, pos + 1)
        params[match.group(0)] = value  # a repeated key: the last one wins (RFC 9651)
    return params, pos
