"""The slot of a definition's schedule a beat tick belongs to: the run's request key for scheduled
runs (services.run_start_scheduled), so one slot starts one run however often beat sends it."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.tzcrontab import TzAwareCrontab

from reconciliation.runs.services import schedule_slot

LONDON = ZoneInfo("Europe/London")
UTC = ZoneInfo("UTC")


def at(text: str, tz=UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


@pytest.mark.parametrize(
    ("cron", "now", "slot"),
    [
        # weekdays at 06:00 London (UTC+0 in December, UTC+1 in July)
        (("0", "6", "1-5"), at("2026-12-02 07:30"), at("2026-12-02 06:00", LONDON)),  # Wednesday
        (("0", "6", "1-5"), at("2026-12-02 06:00:59"), at("2026-12-02 06:00", LONDON)),  # within the minute
        (("0", "6", "1-5"), at("2026-12-02 05:59:59"), at("2026-12-01 06:00", LONDON)),  # the day before
        (("0", "6", "1-5"), at("2026-12-07 05:00"), at("2026-12-04 06:00", LONDON)),  # Monday: Friday's
        (("0", "6", "1-5"), at("2026-07-01 05:30"), at("2026-07-01 06:00", LONDON)),  # 06:30 BST
        (("*/15", "*", "*"), at("2026-12-02 10:14:59"), at("2026-12-02 10:00", LONDON)),
        (("*/15", "*", "*"), at("2026-12-02 00:05"), at("2026-12-02 00:00", LONDON)),
        (("45", "23", "*"), at("2026-12-02 00:05"), at("2026-12-01 23:45", LONDON)),
    ],
)
def test_the_slot_is_the_latest_firing_at_or_before_now(cron, now, slot):
    minute, hour, day_of_week = cron
    crontab = TzAwareCrontab(minute=minute, hour=hour, day_of_week=day_of_week, tz=LONDON)
    assert schedule_slot(crontab, now) == slot


def test_two_ticks_of_one_slot_have_one_slot_and_the_next_slot_another():
    crontab = TzAwareCrontab(minute="*", tz=UTC)
    first, replayed, next_one = (schedule_slot(crontab, at(t)) for t in ("2026-12-02 10:00:03",
                                                                          "2026-12-02 10:00:41",
                                                                          "2026-12-02 10:01:00"))  # fmt: skip
    assert first == replayed == at("2026-12-02 10:00")
    assert next_one == at("2026-12-02 10:01")


def test_a_leap_day_schedule_finds_the_last_leap_day():
    leap_day = TzAwareCrontab(minute="0", hour="6", day_of_month="29", month_of_year="2", tz=UTC)
    assert schedule_slot(leap_day, at("2026-12-02 10:00")) == at("2024-02-29 06:00")
