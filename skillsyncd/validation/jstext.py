"""JavaScript's text forms of values, as the gateway turns frontmatter values into text.

The gateway (Node) trims with JavaScript's ``String.prototype.trim``, prints numbers
with ``String(x)`` and structures with ``JSON.stringify``; a skill's name and
description must come out byte for byte as it prints them.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

# JavaScript's \s without \n: what the gateway's delimiter and line patterns skip.
JS_SPACE = "\t\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_TRIM = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000\ufeff"


def js_trim(text: str) -> str:
    """``text.trim()`` in JavaScript (its white space, not Python's)."""
    return text.strip(_JS_TRIM)


def js_key(key: Any) -> str:
    if key is None:
        return ""
    if isinstance(key, str):
        return key
    if isinstance(key, list | dict):
        return js_json(key)
    return js_scalar(key)


def js_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(float(value)) if isinstance(value, float) or abs(value) >= 2**53 else str(value)
    if isinstance(value, bytes):
        return json.dumps({"type": "Buffer", "data": list(value)}, separators=(",", ":"))
    return str(value)


def js_number(x: float) -> str:
    """``String(x)`` in JavaScript: integers without '.0', exponents only from 1e21 or below 1e-6."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    text = repr(x)
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    digits = Decimal(text)
    magnitude = digits.adjusted()
    if -7 < magnitude < 21:
        plain = format(digits, "f")
        if "." in plain:
            plain = plain.rstrip("0").rstrip(".")
        return plain
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    if not exp_text:  # repr gave positional digits: rebuild the exponent form
        sign = "-" if x < 0 else ""
        raw = format(abs(digits), "e")
        mant, _, exp = raw.partition("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{sign}{mant}e{'+' if int(exp) > 0 else '-'}{abs(int(exp))}"
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def js_json(value: Any) -> str:
    """``JSON.stringify(value)``: JavaScript's number forms, no spaces."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{js_json(js_key(k))}:{js_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(js_json(v) for v in value) + "]"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "null"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return js_scalar(value)
    if isinstance(value, bytes):
        return js_scalar(value)
    return json.dumps(str(value), ensure_ascii=False)


__all__ = ["JS_SPACE", "js_json", "js_key", "js_number", "js_scalar", "js_trim"]
