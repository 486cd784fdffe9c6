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


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataSource

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"trades-{n}")
    kind = "trade"
    format = "csv"
    mapping = factory.LazyFunction(lambda: dict(TRADE_MAPPING))
