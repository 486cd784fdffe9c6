import factory

from jfintech.audit import Actor
from jfintech.tests.factories import TenantFactory
from reconciliation.models import DataSource

ACTOR = Actor.for_system("test")

TRADE_MAPPING = {
    "columns": {
        "external_id": "trade_id", "business_date": "trade_date", "account": "account",
        "instrument": "isin", "amount": "amount", "currency": "ccy", "version": "version",
    },
}  # fmt: skip
TRADE_HEADER = "trade_id,trade_date,account,isin,amount,ccy,version\n"
# The layouts of the sample files in tests/data/: a positions file keyed by account, ISIN and
# as-of date (no id column), and trades with a buy/sell side column.
POSITIONS_MAPPING = {
    "columns": {
        "external_id": ["Account", "ISIN", "AsOf"], "business_date": "AsOf", "account": "Account",
        "instrument": "ISIN", "quantity": "Quantity", "amount": "MarketValue", "currency": "Ccy",
        "amend": "Correction",
    },
    "date_format": "%d/%m/%Y",
}  # fmt: skip
TRADES_MAPPING = {
    "columns": {
        "external_id": "TradeRef", "business_date": "TradeDate", "account": "Account", "instrument": "ISIN",
        "quantity": "Quantity", "amount": "Consideration", "currency": "Ccy",
    },
    # A sale delivers securities (quantity out) and receives cash; a purchase the reverse.
    "signs": {
        "quantity": {"sign_by": "Side", "negative_when": ["SELL", "S"], "positive_when": ["BUY", "B"]},
        "amount": {"sign_by": "Side", "negative_when": ["BUY", "B"], "positive_when": ["SELL", "S"]},
    },
}  # fmt: skip


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataSource

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"trades-{n}")
    kind = "trade"
    format = "csv"
    mapping = factory.LazyFunction(lambda: dict(TRADE_MAPPING))
