"""Money reads as money: the currency's minor units, grouping, the sign; quantities without zeros."""

from decimal import Decimal

import pytest
from django.template import Context, Template

from jfintech.common.money import format_amount, format_money, format_quantity, minor_units


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (Decimal("1260890.000000"), "GBP", "1,260,890.00"),
        (Decimal("1260890.000000"), "JPY", "1,260,890"),
        (Decimal("1260890.5"), "KWD", "1,260,890.500"),
        (Decimal("-1234.5"), "EUR", "-1,234.50"),
        (Decimal("-1234"), "JPY", "-1,234"),
        (Decimal("-0.125"), "BHD", "-0.125"),
        (Decimal("0"), "USD", "0.00"),
        # More significant decimals than the currency has are shown, never rounded away.
        (Decimal("10.005000"), "EUR", "10.005"),
        (Decimal("10.5"), "JPY", "10.5"),
        ("99.9", "usd", "99.90"),
    ],
)
def test_amounts_follow_the_currencys_minor_units(amount, currency, text):
    assert format_amount(amount, currency) == text


def test_money_puts_the_currency_first_and_shows_a_missing_amount_as_a_dash():
    assert format_money(Decimal("-1500"), "GBP") == "GBP -1,500.00"
    assert format_money(None, "GBP") == "—"
    assert [minor_units(c) for c in ("JPY", "KWD", "GBP", "", None)] == [0, 3, 2, 2, 2]


@pytest.mark.parametrize(
    ("quantity", "text"),
    [
        (Decimal("1500.00000000"), "1,500"),
        (Decimal("0.12500000"), "0.125"),
        (Decimal("-250.50000000"), "-250.5"),
        (Decimal("1E+3"), "1,000"),
        ("0", "0"),
    ],
)
def test_quantities_drop_trailing_zeros(quantity, text):
    assert format_quantity(quantity) == text


def test_the_template_filters():
    rendered = Template(
        "{% load money %}{{ a|money:'JPY' }} | {{ a|amount:'KWD' }} | {{ q|quantity }}"
    ).render(Context({"a": Decimal("-1234567.000000"), "q": Decimal("12.50000000")}))
    assert rendered == "JPY -1,234,567 | -1,234,567.000 | 12.5"
