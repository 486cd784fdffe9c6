"""Money and quantities as people read them: the currency's minor units, grouping, a clear sign.

One helper for every surface (admin lists and pages, templates through the ``money`` template
library). Display only: stored amounts stay ``Decimal`` and are never rounded here. An amount with
more significant decimals than its currency's minor units (a computed FX amount, a bad feed) shows
them all rather than hiding a difference an analyst must see.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.utils.html import format_html

# ISO 4217 minor units where they are not 2 (pycountry carries no exponents). Source: the ISO 4217
# list one ("Minor unit" column), current codes only; funds codes included where they differ.
MINOR_UNITS: dict[str, int] = {
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
DEFAULT_MINOR_UNITS = 2
MINUS = "-"


def minor_units(currency: str | None) -> int:
    return MINOR_UNITS.get((currency or "").upper(), DEFAULT_MINOR_UNITS)


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None


def _decimals(value: Decimal) -> int:
    """Significant decimal places: 1260890.000000 → 0, 0.12500 → 3."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _grouped(value: Decimal, places: int) -> str:
    text = f"{abs(value):,.{places}f}"
    return f"{MINUS}{text}" if value < 0 else text


def format_amount(amount, currency: str | None) -> str:
    """``Decimal("-1260890.000000"), "GBP"`` → ``"-1,260,890.00"``; JPY 0 decimals, KWD 3."""
    value = _decimal(amount)
    if value is None:
        return "—" if amount in (None, "") else str(amount)
    return _grouped(value, max(minor_units(currency), _decimals(value)))


def format_money(amount, currency: str | None) -> str:
    """``"GBP -1,260,890.00"`` (the currency first, as on a statement)."""
    text = format_amount(amount, currency)
    return f"{currency} {text}" if currency and text != "—" else text


def format_quantity(quantity) -> str:
    """A quantity without trailing zeros, grouped: ``1500.00000000`` → ``"1,500"``, ``0.125``."""
    value = _decimal(quantity)
    if value is None:
        return "—" if quantity in (None, "") else str(quantity)
    return _grouped(value, _decimals(value))


def money_html(amount, currency: str | None):
    """The admin's cell: right-aligned, tabular digits, the sign kept with the number."""
    return format_html(
        '<span class="jf-money" style="display:block;text-align:right;white-space:nowrap;'
        'font-variant-numeric:tabular-nums">{}</span>',
        format_money(amount, currency),
    )


def quantity_html(quantity):
    return format_html(
        '<span class="jf-money" style="display:block;text-align:right;white-space:nowrap;'
        'font-variant-numeric:tabular-nums">{}</span>',
        format_quantity(quantity),
    )
