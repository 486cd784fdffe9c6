"""ISO 4217 currency codes (from pycountry's ISO data), for the validator's currency check."""

from functools import cache

import pycountry


@cache
def iso_currency_codes() -> list[str]:
    return sorted(c.alpha_3 for c in pycountry.currencies)
