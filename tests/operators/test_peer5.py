"""Peer5ExportOperator: construction checks and real exports (csv passthrough and parsed)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_analytics_export.exceptions import ExportIntegrityError
from airflow_provider_analytics_export.hooks import peer5
from airflow_provider_analytics_export.hooks.peer5 import PEER5_EXPORT
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from analytics_export_sandbox import SandboxServer
from analytics_export_sandbox.peer5 import peer5_csv, peer5_rows
from tests import scripted_peer5
from tests.scripted_server import ScriptedServer
from tests.typed import parquet_rows

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def pinned(sandbox_reset: SandboxServer, mocker: Any) -> SandboxServer:
    mocker.patch.object(peer5, "now", return_value=NOW)
    sandbox_reset.config.now = NOW.timestamp()
    return sandbox_reset


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"metrics": ["views"]},
            "metrics=['views'] has unknown value(s) 'views'; allowed: http, p2p, played",
        ),
        ({"interval": "15m"}, "interval='15m' is not supported; use one of: 1m, 5m, 10m, 30m"),
        (
            {"filters": {"device": ["tv"]}},
            "filters={'device': ['tv']} has unknown value(s) 'device'; allowed: browser.name",
        ),
        ({"dimensions": ["asn"]}, "dimensions=['asn'] has unknown value(s) 'asn'; allowed: browser.name"),
        (
            {"dimensions": ["os.name", "city.name", "isp.name"]},
            "Peer5 splits by at most 2 distinct dimensions per query; allowed: browser.name",
        ),
        (
            {"destination": "file:///tmp/x.xml"},
            "Cannot tell the output format of destination='file:///tmp/x.xml'",
        ),
    ],
)
def test_invalid_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "task_id": "t",
        "destination": "file:///tmp/x.csv",
        "metrics": ["http"],
        **kwargs,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        Peer5ExportOperator(**arguments)


def test_templated_filters_are_checked_after_rendering(pinned: SandboxServer, tmp_path: Path) -> None:
    operator = Peer5ExportOperator(
        task_id="t", destination=(tmp_path / "x.csv").as_uri(), metrics=["http"], filters="{{ params.f }}"
    )
    operator.filters = {"device": ["tv"]}  # what rendering produced
    with pytest.raises(
        ValueError, match=re.escape("filters={'device': ['tv']} has unknown value(s) 'device'")
    ):
        operator.execute({"data_interval_start": NOW - HOUR, "data_interval_end": NOW})
    assert not pinned.requests_log


def test_aligned_csv_streams_peer5_bytes(pinned: SandboxServer, tmp_path: Path) -> None:
    start = NOW - 8 * HOUR
    operator = Peer5ExportOperator(
        task_id="t", destination=(tmp_path / "m.csv").as_uri(), metrics=["http", "p2p"], interval="1m"
    )

    summary = operator.execute({"data_interval_start": start, "data_interval_end": NOW})

    rows = peer5_rows(pinned.config, _ms(start), _ms(NOW), "1m", ["http", "p2p"])
    assert (tmp_path / "m.csv").read_text() == peer5_csv(rows, ["timestamp", "http", "p2p"])
    assert summary["passthrough"] is True
    assert summary["rows"] == 480
    assert summary["chunks"] == 2


def test_a_static_window_cutting_a_bucket_fails_at_dag_parse() -> None:
    """Was fetched as JSON and trimmed; now refused, since the last hour would be written partial."""
    start, end = NOW - 2 * HOUR + dt.timedelta(minutes=1), NOW - dt.timedelta(minutes=59)
    with pytest.raises(ValueError, match=re.escape("start=2024-06-15T10:01:00+00:00 does not fall on a ")):
        Peer5ExportOperator(
            task_id="t",
            destination="file:///tmp/h.csv",
            metrics=["sessions"],
            start=start.isoformat(),
            end=end,
        )


def test_a_day_interval_on_an_hourly_run_is_refused_before_any_request(
    pinned: SandboxServer, tmp_path: Path
) -> None:
    operator = Peer5ExportOperator(
        task_id="t", destination=(tmp_path / "d.csv").as_uri(), metrics=["http"], interval="1d"
    )
    with pytest.raises(ValueError, match=r"interval='1d' boundary, so a 1d bucket would straddle the window"):
        operator.execute({"data_interval_start": NOW - HOUR, "data_interval_end": NOW})
    assert not pinned.requests_log
    assert not (tmp_path / "d.csv").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_sparse_rows_with_the_bucket_at_to_give_exact_files(
    pinned: SandboxServer, tmp_path: Path, fmt: str
) -> None:
    pinned.config.update({"peer5_sparse": True, "peer5_to_inclusive": True})
    dims = ["country.code"]
    operator = Peer5ExportOperator(
        task_id="t",
        destination=(tmp_path / f"s.{fmt}").as_uri(),
        metrics=["http", "rebuffered"],
        interval="5m",
        dimensions=dims,
    )

    summary = operator.execute({"data_interval_start": NOW - 7 * HOUR, "data_interval_end": NOW})

    truth = peer5_rows(pinned.config, _ms(NOW - 7 * HOUR), _ms(NOW), "5m", ["http", "rebuffered"], None, dims)
    assert any(len(row) < 4 for row in truth)  # some rows lack a metric
    columns = ["timestamp", "country.code", "http", "rebuffered"]
    if fmt == "csv":  # Peer5's own bytes, the bucket at each chunk's `to` dropped
        assert (tmp_path / "s.csv").read_text() == peer5_csv(truth, columns)
    else:
        schema = PEER5_EXPORT.select(columns)
        table = pq.read_table(tmp_path / "s.parquet")
        assert table.to_pylist() == parquet_rows(truth, schema) and table.schema == schema.arrow()
        assert str(table.schema.field("timestamp").type) == "timestamp[ms, tz=UTC]"
        assert summary["schema"] == schema.describe()
    assert summary["rows"] == len(truth) == 7 * 12 * 5
    assert summary["chunks"] == 2


def test_jsonl_with_two_dimensions_has_one_row_per_timestamp_and_values(
    pinned: SandboxServer, tmp_path: Path
) -> None:
    dims = ["os.name", "session.page"]
    operator = Peer5ExportOperator(
        task_id="t",
        destination=(tmp_path / "d.jsonl").as_uri(),
        metrics=["played"],
        interval="30m",
        dimensions=dims,
        filters={"os.name": ["iOS", "Android"]},
    )

    operator.execute({"data_interval_start": NOW - 2 * HOUR, "data_interval_end": NOW})

    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").open()]
    filters = {"os.name": ["iOS", "Android"]}
    truth = peer5_rows(pinned.config, _ms(NOW - 2 * HOUR), _ms(NOW), "30m", ["played"], filters, dims)
    assert rows == truth  # as Peer5 sent them
    assert len({(r["timestamp"], r["os.name"], r["session.page"]) for r in rows}) == len(rows) == 4 * 2 * 3


def test_too_old_for_the_interval_fails_before_any_request_and_writes_nothing(
    pinned: SandboxServer, tmp_path: Path
) -> None:
    operator = Peer5ExportOperator(task_id="t", destination=(tmp_path / "o.csv").as_uri(), metrics=["http"])
    start = NOW - dt.timedelta(days=30)
    with pytest.raises(ValueError, match="only within the last 14 days.*use a coarser interval: 1d, 7d, 14d"):
        operator.execute({"data_interval_start": start, "data_interval_end": start + HOUR})
    assert not pinned.requests_log
    assert not (tmp_path / "o.csv").exists()


@pytest.fixture
def scripted_operator(
    scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., Peer5ExportOperator]:
    """Builds a 1m operator writing ``p.csv`` from a scripted Peer5 answering ``replies`` (CSV) in turn."""

    def build(replies: Sequence[str], **kwargs: Any) -> Peer5ExportOperator:
        scripted.queue(*map(scripted_peer5.csv_reply, replies))
        return Peer5ExportOperator(
            task_id="t",
            destination=(tmp_path / "p.csv").as_uri(),
            interval="1m",
            peer5_conn_id=scripted_peer5.connect(scripted, monkeypatch, NOW),
            **kwargs,
        )

    return build


TWELVE_HOURS = {"data_interval_start": NOW - 12 * HOUR, "data_interval_end": NOW}  # two 6-hour chunks at 1m
FIRST, SECOND = _ms(NOW - 12 * HOUR), _ms(NOW - 6 * HOUR)


def test_csv_rows_are_records_not_lines(
    scripted_operator: Callable[..., Peer5ExportOperator], tmp_path: Path
) -> None:
    """A quoted page path holding a newline is one record: the count is quote-aware."""
    header = '"timestamp","session.page","http"\n'
    records = [f'{FIRST},"/a\nb",1\n{FIRST},"/c",2\n', f'{SECOND},"/""q""\n\n",3\n']
    replies = [header + records[0], header + records[1]]
    operator = scripted_operator(replies, metrics=["http"], dimensions=["session.page"])

    summary = operator.execute(TWELVE_HOURS)

    text = (tmp_path / "p.csv").read_text()
    assert text == header + "".join(records)
    assert (summary["rows"], summary["chunks"], summary["bytes"]) == (3, 2, len(text.encode()))


def test_a_chunk_with_other_columns_fails_and_keeps_the_previous_file(
    scripted_operator: Callable[..., Peer5ExportOperator], tmp_path: Path
) -> None:
    (tmp_path / "p.csv").write_text("previous\n")
    replies = [f'"timestamp","http","p2p"\n{FIRST},1,2\n', f'"timestamp","p2p","http"\n{SECOND},2,1\n']
    operator = scripted_operator(replies, metrics=["http", "p2p"])

    with pytest.raises(ExportIntegrityError, match="Peer5 CSV header changed between chunks"):
        operator.execute(TWELVE_HOURS)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]
    assert (tmp_path / "p.csv").read_text() == "previous\n"


def test_bucket_at_to_and_sparse_metrics_give_each_bucket_once_over_two_hourly_runs(
    pinned: SandboxServer, tmp_path: Path
) -> None:
    """Peer5 returning the bucket that starts at `to`, and rows lacking metrics: two consecutive hourly
    runs of the example DAG's two exports (CSV pass-through at 1m, JSON at 5m by browser and country)
    hold every bucket of their hour exactly once (moved from tests/e2e: the hook's business, not
    Airflow's; it cost two Airflow runs there)."""
    pinned.config.update({"peer5_to_inclusive": True, "peer5_sparse": True})
    dims, playback = ["browser.name", "country.code"], ["sessions", "played", "rebuffered"]
    first = NOW - 5 * HOUR
    for start in (first, first + HOUR):
        end, folder = start + HOUR, tmp_path / start.strftime("%H")
        context = {"data_interval_start": start, "data_interval_end": end}
        Peer5ExportOperator(
            task_id="m", destination=(folder / "m.csv").as_uri(), metrics=["http", "p2p"], interval="1m"
        ).execute(context)
        Peer5ExportOperator(
            task_id="p",
            destination=(folder / "p.jsonl").as_uri(),
            metrics=playback,
            interval="5m",
            dimensions=dims,
        ).execute(context)

        traffic = peer5_rows(pinned.config, _ms(start), _ms(end), "1m", ["http", "p2p"])
        assert (folder / "m.csv").read_text() == peer5_csv(traffic, ["timestamp", "http", "p2p"])
        assert [row["timestamp"] for row in traffic] == list(range(_ms(start), _ms(end), 60_000))
        rows = [json.loads(line) for line in (folder / "p.jsonl").open()]
        assert rows == peer5_rows(pinned.config, _ms(start), _ms(end), "5m", playback, None, dims)
        keys = [(row["timestamp"], row["browser.name"], row["country.code"]) for row in rows]
        assert len(keys) == len(set(keys)) == 12 * 4 * 5
    stamps = [
        line.split(",")[0]
        for hour in (first, first + HOUR)
        for line in (tmp_path / hour.strftime("%H") / "m.csv").read_text().splitlines()[1:]
    ]
    assert len(stamps) == len(set(stamps)) == 120
