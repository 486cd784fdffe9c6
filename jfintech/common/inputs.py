"""What no input may carry into the system (jfintech/api/boundary.py applies it to every request;
the JSON records parser to every pulled or uploaded record).

PostgreSQL cannot store a NUL byte in text or jsonb, and an integer beyond bigint fails every
comparison with an id column: both were 500s. The message never repeats the offending text.
"""

import math
from decimal import Decimal

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
NUL = "\x00"


class HostileInput(ValueError):
    """A value refused at the input boundary (a NUL byte, an integer beyond bigint, NaN)."""


def check(value, where: str = "body") -> None:
    """Raise :class:`HostileInput` naming the first place ``value`` (parsed JSON) breaks the rules."""
    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                raise HostileInput(f"{at}: a NUL byte is not allowed.")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not BIGINT_MIN <= item <= BIGINT_MAX:
                raise HostileInput(f"{at}: integer out of range (64-bit signed).")
        elif isinstance(item, float | Decimal):
            if not math.isfinite(item):
                raise HostileInput(f"{at}: a number must be finite.")
        elif isinstance(item, dict):
            for key, child in item.items():
                if NUL in str(key):
                    raise HostileInput(f"{at}: a NUL byte is not allowed in a field name.")
                stack.append((child, f"{at}.{key}"))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{at}[{i}]") for i, child in enumerate(item))
