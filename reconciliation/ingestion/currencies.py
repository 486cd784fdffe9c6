"""The currency codes a record may carry: ISO 4217's active codes, for the validator and mappings.

pycountry's ISO 4217 data is the current list (withdrawn codes such as HRK or SLL are not in it).
Two of its codes name no currency and are refused: XXX ("no currency is involved") and XTS
("reserved for testing"). ``settings.INGEST_EXTRA_CURRENCIES`` adds codes a deployment needs on
top (a test code in a test environment, say), read at each call so a settings change applies.
"""

from functools import cache

import pycountry
from django.conf import settings

NOT_A_CURRENCY = frozenset({"XXX", "XTS"})


@cache
def _active_iso_codes() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies) - NOT_A_CURRENCY


def iso_currency_codes() -> frozenset[str]:
    extra = {str(code).strip().upper() for code in getattr(settings, "INGEST_EXTRA_CURRENCIES", ())}
    return _active_iso_codes() | extra
