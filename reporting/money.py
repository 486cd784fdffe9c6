"""Amounts in a currency's minor units (ISO 4217 exponents), as every report and export shows them.

A value with more decimals than the currency has (amounts are stored with 6) is never rounded
away: its minor-unit figure keeps the fraction, so nothing is silently dropped.
"""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 minor-unit exponents that differ from 2 (the default).
EXPONENTS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


def exponent(currency: str) -> int:
    return EXPONENTS.get((currency or "").upper(), 2)


def minor_units(amount, currency: str) -> int | Decimal | None:
    """``Decimal("12.34")`` in EUR → 1234; None stays None; a finer fraction stays a Decimal."""
    if amount is None:
        return None
    value = Decimal(amount).scaleb(exponent(currency))
    return int(value) if value == value.to_integral_value() else value.normalize()
