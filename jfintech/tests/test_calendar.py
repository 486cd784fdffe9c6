from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jfintech.tenancy.calendar import (
    add_business_days,
    business_days_between,
    is_business_day,
    next_business_day,
    tenant_today,
)
from jfintech.tenancy.models import Tenant

LONDON = Tenant(
    slug="ldn",
    timezone="Europe/London",
    weekend_days=[6, 7],
    holidays=[date(2026, 12, 25), date(2026, 12, 28)],
)
DUBAI = Tenant(slug="dxb", timezone="Asia/Dubai", weekend_days=[6, 7])


def test_today_is_the_tenants_local_date():
    instant = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 00:30 on 1 July in London (BST)
    assert tenant_today(LONDON, instant) == date(2026, 7, 1)
    assert tenant_today(Tenant(slug="u", timezone="UTC"), instant) == date(2026, 6, 30)


def test_weekends_and_holidays_are_closed():
    assert is_business_day(LONDON, date(2026, 12, 24))
    assert not is_business_day(LONDON, date(2026, 12, 25))  # holiday (Friday)
    assert not is_business_day(LONDON, date(2026, 12, 26))  # Saturday
    assert add_business_days(LONDON, date(2026, 12, 24), 1) == date(2026, 12, 29)
    assert add_business_days(LONDON, date(2026, 12, 29), -1) == date(2026, 12, 24)
    assert next_business_day(LONDON, date(2026, 12, 25)) == date(2026, 12, 29)
    assert business_days_between(LONDON, date(2026, 12, 24), date(2026, 12, 29)) == 1


dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@settings(derandomize=True, deadline=None, max_examples=300)
@given(start=dates, end=dates)
def test_counting_agrees_with_walking_day_by_day(start, end):
    low, high = sorted([start, end])
    walked = sum(
        1 for i in range(1, (high - low).days + 1) if is_business_day(LONDON, low + timedelta(days=i))
    )
    assert business_days_between(LONDON, start, end) == (walked if end >= start else -walked)


@settings(derandomize=True, deadline=None, max_examples=300)
@given(start=dates, n=st.integers(min_value=-400, max_value=400))
def test_adding_then_counting_round_trips(start, n):
    end = add_business_days(LONDON, start, n)
    if n:
        assert is_business_day(LONDON, end)
    # Counting is over (start, end]: going backwards from a closed day, the first step lands
    # on the day before and counts nothing closed, so the round trip holds from business days.
    if n >= 0 or is_business_day(LONDON, start):
        assert business_days_between(LONDON, start, end) == n
