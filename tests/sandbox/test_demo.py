"""``make demo`` runs each example DAG on a day whose windows have settled, at any time of day."""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil

import pytest

from airflow_provider_analytics_export import operators
from airflow_provider_analytics_export.operators.base import BaseExportOperator
from analytics_export_sandbox.demo import SETTLED_AFTER, settled_logical_date

UTC = dt.timezone.utc
NEW_YORK_WINTER = dt.timezone(dt.timedelta(hours=-5))


def _operators(cls: type[BaseExportOperator]) -> list[type[BaseExportOperator]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _operators(direct))]


def test_the_demo_waits_longer_than_any_operators_default_settle():
    for module in pkgutil.iter_modules(operators.__path__):
        importlib.import_module(f"{operators.__name__}.{module.name}")
    settles = {op.__name__: op.default_settle for op in _operators(BaseExportOperator)}
    assert max(settles.values()) >= dt.timedelta(hours=2)  # the walk found Sealmetrics
    assert max(settles.values()) + dt.timedelta(minutes=10) <= SETTLED_AFTER, settles


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (dt.datetime(2026, 12, 8, 0, 3, tzinfo=UTC), "2026-12-07T00:00:00+00:00"),  # CI's hang
        (dt.datetime(2026, 12, 8, 2, 14, tzinfo=UTC), "2026-12-07T00:00:00+00:00"),
        (dt.datetime(2026, 12, 8, 2, 16, tzinfo=UTC), "2026-12-08T00:00:00+00:00"),
        (dt.datetime(2026, 12, 8, 23, 59, tzinfo=UTC), "2026-12-08T00:00:00+00:00"),
        (dt.datetime(2026, 12, 8, 1, 0, tzinfo=NEW_YORK_WINTER), "2026-12-08T00:00:00+00:00"),
    ],
)
def test_the_logical_date_is_a_settled_midnight(now: dt.datetime, expected: str):
    logical = dt.datetime.fromisoformat(settled_logical_date(now))
    assert settled_logical_date(now) == expected
    assert logical + SETTLED_AFTER <= now
