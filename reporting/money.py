"""Amounts in a currency's minor units (ISO 4217 exponents), as every report and export shows them.

The exponents are jfintech.common.money's (one table for every surface). A value with more decimals
than the currency has (amounts are stored with 6) is never rounded away: its minor-unit figure keeps
the fraction, so nothing is silently dropped.
"""

from __future__ import annotations

from decimal import Decimal

from jfintech.common.money import minor_units as exponent


def minor_units(amount, currency: str) -> int | Decimal | None:
    """``Decimal("12.34")`` in EUR → 1234; None stays None; a finer fraction stays a Decimal."""
    if amount is None:
        return None
    value = Decimal(amount).scaleb(exponent(currency))
    return int(value) if value == value.to_integral_value() else value.normalize()
