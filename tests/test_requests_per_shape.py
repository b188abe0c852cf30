"""Every export shape costs at most the fewest requests it needs + 2 (issue 25), against the sandbox."""

from __future__ import annotations

import pytest

from benchmarks.bench_requests import measure


@pytest.fixture(scope="module")
def table() -> dict[str, dict]:
    """One run of every shape: 24,000 OpenPanel events a day in pages of 250 (an hour: ~4 pages)."""
    return {row["shape"]: row for row in measure(events_per_day=24_000, page_size=250)}


def test_every_shape_stays_within_two_requests_of_its_minimum(table):
    over = {name: row for name, row in table.items() if row["requests"] > row["minimum"] + 2}
    assert not over, f"shapes over minimum + 2: {over}"


def test_a_past_hour_reads_its_pages_not_the_whole_day(table):
    """The issue's case: an hour of a past day once read the day (96 pages here), now about 6."""
    hour, day = table["OpenPanel past hour (10:00)"], table["OpenPanel past day"]
    assert hour["rows"] * 20 < day["rows"] and hour["requests"] <= hour["minimum"] + 2 < day["requests"] / 10
