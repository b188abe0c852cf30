"""OpenPanel's odd answers, as the real server gives them, through the operators over real sockets.

The sandbox does not (yet) produce these, so a scripted server answers what
``Openpanel-dev/openpanel`` does: a bucket at ``end`` (its chart range is ``created_at <= end``),
``country`` as two NUL characters (ClickHouse ``FixedString(2)``), and ``series: []`` for an
event that did not occur.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_provider_analytics_export.operators.openpanel import (
    OpenPanelChartsExportOperator,
    OpenPanelEventsExportOperator,
)
from tests.scripted_server import Reply, ScriptedServer

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 4, 15, tzinfo=UTC), dt.datetime(2024, 4, 17, tzinfo=UTC)
CONTEXT = {"data_interval_start": START, "data_interval_end": END}
EVENTS = [{"name": "screen_view"}]


@pytest.fixture
def conn_id(scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> str:
    conn = {
        "conn_type": "openpanel",
        "host": scripted.url,
        "login": "id",
        "password": "secret",
        "extra": {"project_id": "p1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OPENPANEL_SCRIPTED", json.dumps(conn))
    return "openpanel_scripted"


def chart_reply(*dates: str) -> Reply:
    data = [{"date": date, "count": 5} for date in dates]
    series = {"id": "s1", "names": ["screen_view"], "event": {"name": "screen_view"}, "data": data}
    return Reply(200, {"series": [series]})


def test_a_chart_bucket_starting_at_end_is_left_to_the_next_window(conn_id, scripted, tmp_path: Path):
    """An event exactly at ``end`` makes the server answer a bucket at ``end``; the next run owns it."""
    scripted.queue(chart_reply("2024-04-15 00:00:00", "2024-04-16 00:00:00", "2024-04-17 00:00:00"))
    path = tmp_path / "chart.jsonl"
    op = OpenPanelChartsExportOperator(
        task_id="c", destination=path.as_uri(), events=EVENTS, openpanel_conn_id=conn_id
    )
    result = op.execute(CONTEXT)
    dates = [json.loads(line)["date"] for line in path.read_text().splitlines()]
    assert dates == ["2024-04-15T00:00:00+00:00", "2024-04-16T00:00:00+00:00"] and result["rows"] == 2


def test_a_chart_event_without_occurrences_is_named_not_silently_empty(
    conn_id, scripted, tmp_path, caplog, capsys
):
    scripted.queue(Reply(200, {"series": []}))
    path = tmp_path / "chart.csv"
    op = OpenPanelChartsExportOperator(
        task_id="c", destination=path.as_uri(), events=EVENTS, openpanel_conn_id=conn_id
    )
    caplog.set_level(logging.WARNING)
    result = op.execute(CONTEXT)
    assert result["rows"] == 0 and result["events_without_data"] == ["screen_view"]
    assert "no series for event(s) screen_view" in caplog.text + capsys.readouterr().out
    assert path.read_text() == "series_id,event,names,date,count,_extra\n"  # the columns, no row


def events_reply(*countries: str | None) -> Reply:
    data = [
        {"id": f"e{n}", "createdAt": f"2024-04-15T10:00:0{n}.000Z", "name": "x", "country": country}
        for n, country in enumerate(countries)
    ]
    meta = {"count": len(data), "totalCount": len(data), "pages": 1, "current": 1}
    return Reply(200, {"meta": meta, "data": data})


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_country_of_two_nul_characters_is_written_as_null(conn_id, scripted, tmp_path: Path, fmt: str):
    """ClickHouse's FixedString(2) default means "not resolved": null in every format, never NUL bytes."""
    scripted.queue(events_reply("\u0000\u0000", "DE"))
    path = tmp_path / f"events.{fmt}"
    op = OpenPanelEventsExportOperator(
        task_id="e", destination=path.as_uri(), fields=["name", "country"], openpanel_conn_id=conn_id
    )
    op.execute({"data_interval_start": START, "data_interval_end": START + dt.timedelta(days=1)})
    if fmt != "parquet":  # a binary format: its own zero bytes are not data
        assert b"\x00" not in path.read_bytes() and "\\u0000" not in path.read_text()
    if fmt == "jsonl":
        countries = [json.loads(line)["country"] for line in path.read_text().splitlines()]
    elif fmt == "csv":
        with path.open(newline="") as handle:
            countries = [row["country"] or None for row in csv.DictReader(handle)]
    else:
        countries = pq.read_table(path).column("country").to_pylist()
    assert countries == [None, "DE"]
