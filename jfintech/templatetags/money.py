"""``{% load money %}``: ``{{ amount|money:currency }}``, ``{{ amount|amount:currency }}``,
``{{ qty|quantity }}`` (jfintech.common.money)."""

from django import template

from jfintech.common import money as m

register = template.Library()


@register.filter
def money(amount, currency=""):
    return m.format_money(amount, currency)


@register.filter
def amount(value, currency=""):
    return m.format_amount(value, currency)


@register.filter
def quantity(value):
    return m.format_quantity(value)
