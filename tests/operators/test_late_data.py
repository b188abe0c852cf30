"""Late data in the operators: settle before exporting, revisit earlier windows into their own partitions.

Against the sandbox over real sockets; the only fake is Peer5's clock (its recency limits).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import DAG, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.timetables import interval as core_timetables

from airflow_provider_analytics_export.compat import (
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    TaskDeferred,
)
from airflow_provider_analytics_export.hooks import peer5
from airflow_provider_analytics_export.late_data import (
    RevisitError,
    previous_window,
    revisit_windows,
    window_context,
)
from airflow_provider_analytics_export.operators.base import BaseExportOperator
from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import (
    OpenPanelChartsExportOperator,
    OpenPanelEventsExportOperator,
)
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import SealmetricsExportOperator
from analytics_export_sandbox import SandboxServer

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
PEER5_NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


class StateStore(dict[str, Any]):
    """Stand-in for Airflow's task_state_store (the execution API is not reachable in unit tests)."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


class TaskInstance:
    stats_tags: dict[str, str] = {}
    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


class DagRun:
    def __init__(self, run_type: str) -> None:
        self.run_type = run_type
        self.start_date = dt.datetime.now(UTC)


@pytest.fixture
def logs(caplog, capsys):
    caplog.set_level(logging.INFO)
    return lambda: caplog.text + capsys.readouterr().out


def run_like_airflow(operator: BaseExportOperator, window: tuple[dt.datetime, dt.datetime], **extra: Any):
    """Render, pre_execute, execute and the post_execute hook, in the task runner's order."""
    start, end = window
    context: dict[str, Any] = {
        "data_interval_start": start,
        "data_interval_end": end,
        "ti": TaskInstance(),
        "task_state_store": StateStore(),
        "dag_run": DagRun("scheduled"),
        **extra,
    }
    task = operator.prepare_for_execution()
    context = {**window_context(context, window), "task": task, "outlet_events": OutletEventAccessors()}
    task.render_template_fields(context)
    task.pre_execute(context)
    result = task.execute(context)
    task._post_execute_hook(context, result)
    return result, context


# -- every API, revisited: a stale partition is replaced, an unchanged one left alone ---------------

DAILY = (dt.datetime(2024, 4, 14, tzinfo=UTC), dt.datetime(2024, 4, 15, tzinfo=UTC))
CASES: dict[str, tuple[Any, dict[str, Any], tuple[dt.datetime, dt.datetime]]] = {
    "browsee": (BrowseeSessionsExportOperator, {}, DAILY),
    "braze": (BrazeSessionsExportOperator, {"unit": "hour"}, DAILY),
    "openpanel": (OpenPanelEventsExportOperator, {}, DAILY),
    "peer5": (
        Peer5ExportOperator,
        {"metrics": ["http", "p2p"], "interval": "5m"},
        (PEER5_NOW - HOUR, PEER5_NOW),
    ),
    "sealmetrics": (
        SealmetricsExportOperator,
        {"export_type": "microconversions", "poll_interval": 0.1, "deferrable": False},
        (dt.datetime(2025, 1, 10, tzinfo=UTC), dt.datetime(2025, 1, 11, tzinfo=UTC)),
    ),
}


def shorten(path: Path, fmt: str) -> int:
    """Make ``path`` what an export that ran too early wrote: its last record missing. Returns its records."""
    if fmt == "parquet":
        table = pq.read_table(path)
        pq.write_table(table.slice(0, table.num_rows - 1), path)
        return table.num_rows - 1
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    return len(lines) - 1 - (fmt == "csv")


def records(path: Path, fmt: str) -> Any:
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    return path.read_bytes()


@pytest.mark.parametrize("api", list(CASES))
@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_a_revisit_replaces_a_stale_partition_and_leaves_a_settled_one(
    api: str, fmt: str, sandbox_reset: SandboxServer, tmp_path: Path, mocker: Any, logs: Any
) -> None:
    if api == "sealmetrics" and fmt != "csv":
        pytest.skip("Sealmetrics writes its own csv or json file")
    mocker.patch.object(peer5, "now", return_value=PEER5_NOW)
    sandbox_reset.config.now = PEER5_NOW.timestamp() if api == "peer5" else None
    operator_class, kwargs, window = CASES[api]
    previous = previous_window(window)
    template = f"{tmp_path.as_uri()}/{api}/{{{{ ts_nodash }}}}/part.{fmt}"
    path = {w: tmp_path / api / w[0].strftime("%Y%m%dT%H%M%S") / f"part.{fmt}" for w in (window, previous)}

    # The previous window, exported by its own run: the truth, since the sandbox's past is final here.
    with DAG(f"late_{api}", schedule=None):
        first = operator_class(task_id="t", destination=template, **kwargs)
    run_like_airflow(first, previous)
    final = records(path[previous], fmt)
    rows_before = shorten(path[previous], fmt)

    with DAG(f"late_{api}_revisit", schedule=None):
        operator = operator_class(task_id="t", destination=template, revisit=1, **kwargs)
    result, _ = run_like_airflow(operator, window)

    [revisit] = result["revisits"]
    assert revisit == {
        "window_start": previous[0].isoformat(),
        "window_end": previous[1].isoformat(),
        "uri": path[previous].as_uri(),
        "rows_before": rows_before,
        "rows_after": rows_before + 1,
        "replaced": True,
    }
    assert records(path[previous], fmt) == final
    assert f"revisited=1 replaced=1 ({previous[0].isoformat()} {rows_before}->{rows_before + 1})" in logs()

    # Nothing new: the next identical run rewrites neither its own partition nor the revisited one.
    stamps = {w: p.stat().st_mtime_ns for w, p in path.items()}
    time.sleep(0.01)
    again, _ = run_like_airflow(operator, window)
    assert again["replaced"] is False and again["rows_before"] == again["rows"]
    assert [r["replaced"] for r in again["revisits"]] == [False]
    assert {w: p.stat().st_mtime_ns for w, p in path.items()} == stamps
    assert sorted(p.name for p in (tmp_path / api).rglob("*")) == sorted(  # no temp object left
        [*(p.parent.name for p in path.values()), *(p.name for p in path.values())]
    )


# -- which windows, rendered how -----------------------------------------------------------------


#: A DAG's timetable is the SDK's on Airflow 3.1+ (public ``expression``/``timezone``/``delta``) and the
#: core one on 3.0 (the same, private): both kinds, on every Airflow, so neither is taken for no schedule.
TIMETABLES = {
    "dag's": (CronDataIntervalTimetable, DeltaDataIntervalTimetable),
    "core": (core_timetables.CronDataIntervalTimetable, core_timetables.DeltaDataIntervalTimetable),
}


@pytest.mark.parametrize("kind", list(TIMETABLES))
def test_previous_windows_follow_the_schedule_across_dst(kind: str) -> None:
    cron_timetable, delta_timetable = TIMETABLES[kind]
    paris = ZoneInfo("Europe/Paris")
    daily = cron_timetable("@daily", timezone="Europe/Paris")
    # 2024-03-31 is 23 hours long in Paris, 2024-10-27 is 25.
    after_spring = (dt.datetime(2024, 4, 1, tzinfo=paris), dt.datetime(2024, 4, 2, tzinfo=paris))
    windows = revisit_windows(tuple(m.astimezone(UTC) for m in after_spring), 2, daily)
    assert [(b - a) / HOUR for a, b in windows] == [23, 24]
    assert windows[0][0] == dt.datetime(2024, 3, 31, tzinfo=paris)
    after_autumn = (dt.datetime(2024, 10, 28, tzinfo=paris), dt.datetime(2024, 10, 29, tzinfo=paris))
    assert [(b - a) / HOUR for a, b in revisit_windows(after_autumn, 1, daily)] == [25]

    hourly = cron_timetable("@hourly", timezone="Europe/Paris")
    at = dt.datetime(2024, 10, 27, 2, tzinfo=UTC)  # the repeated local hour
    assert revisit_windows((at, at + HOUR), 3, hourly) == [
        (at - HOUR * k, at - HOUR * (k - 1)) for k in (1, 2, 3)
    ]

    six_hours = delta_timetable(dt.timedelta(hours=6))
    assert revisit_windows((at, at + HOUR), 1, six_hours) == [(at - 6 * HOUR, at)]
    # No timetable (explicit start/end): steps of the window's own length.
    assert revisit_windows((at, at + 2 * HOUR), 2, None) == [
        (at - 2 * HOUR, at),
        (at - 4 * HOUR, at - 2 * HOUR),
    ]


def test_a_horizon_revisits_every_window_starting_within_it() -> None:
    start = dt.datetime(2024, 4, 15, tzinfo=UTC)
    windows = revisit_windows((start, start + HOUR), dt.timedelta(hours=3), None)
    assert [w[0] for w in windows] == [start - HOUR, start - 2 * HOUR, start - 3 * HOUR]
    assert revisit_windows((start, start + HOUR), 0, None) == []


def test_a_window_context_is_what_airflow_gives_that_window() -> None:
    start = dt.datetime(2024, 4, 14, tzinfo=UTC)
    run = {"data_interval_start": start + DAY, "logical_date": start + DAY, "params": {"p": 1}}
    context = window_context(run, (start, start + DAY))
    assert (context["ds"], context["ds_nodash"], context["ts_nodash"]) == (
        "2024-04-14",
        "20240414",
        "20240414T000000",
    )
    assert (context["ts"], context["ts_nodash_with_tz"]) == (
        "2024-04-14T00:00:00+00:00",
        "20240414T000000+0000",
    )
    assert context["data_interval_end"] == start + DAY and context["params"] == {"p": 1}
    # A manual run's logical date is its interval's end: a revisited 23-hour day's is that day's end.
    short = (dt.datetime(2024, 3, 30, 23, tzinfo=UTC), dt.datetime(2024, 3, 31, 22, tzinfo=UTC))
    manual = {"data_interval_start": start, "data_interval_end": start + DAY, "logical_date": start + DAY}
    assert window_context(manual, short)["logical_date"] == short[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"revisit": -1}, r"revisit=-1 is not allowed; use an int 0\.\.400 .* or a timedelta >= 0"),
        ({"revisit": True}, r"revisit=True is not allowed"),
        (
            {"settle": dt.timedelta(seconds=-1)},
            r"settle=.* is not allowed; use a timedelta \(or seconds\) >= 0",
        ),
        ({"revisit": 2}, r"revisit=2 needs a destination that depends on the window"),
    ],
)
def test_bad_late_data_arguments_fail_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BrowseeSessionsExportOperator(task_id="t", destination="file:///tmp/x.jsonl", **kwargs)


def test_revisits_rendering_one_destination_are_refused_before_any_request(
    sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    with DAG("late_same", schedule=None):
        operator = BrowseeSessionsExportOperator(
            task_id="t", destination=f"{tmp_path.as_uri()}/{{{{ ds }}}}/s.jsonl", revisit=2
        )
    hourly = (dt.datetime(2024, 4, 15, 5, tzinfo=UTC), dt.datetime(2024, 4, 15, 6, tzinfo=UTC))
    with pytest.raises(
        ValueError, match=r"renders destination .*2024-04-15/s.jsonl', the same as this run's window"
    ):
        task = operator.prepare_for_execution()
        own = f"{tmp_path.as_uri()}/2024-04-15/s.jsonl"
        task.revisit_partitions({**window_context({}, hourly), "task": task}, {"uri": own})
    assert not sandbox_reset.requests_log


# -- failures, backfills, asset events ------------------------------------------------------------


def test_a_failed_revisit_fails_the_task_after_the_others_are_committed(
    sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    window = DAILY
    (tmp_path / "20240412").write_text("a file where the day's folder should be")
    with DAG("late_fail", schedule=None):
        operator = BrowseeSessionsExportOperator(
            task_id="t", destination=f"{tmp_path.as_uri()}/{{{{ ds_nodash }}}}/s.jsonl", revisit=3
        )
    with pytest.raises(RevisitError, match=r"1 of 3 revisited windows failed .*\[2024-04-12T00:00:00\+00:00"):
        run_like_airflow(operator, window)
    assert sorted(p.parent.name for p in tmp_path.rglob("s.jsonl")) == ["20240411", "20240413", "20240414"]


def test_a_backfill_run_skips_its_revisits_unless_asked(
    sandbox_reset: SandboxServer, tmp_path: Path, logs: Any
) -> None:
    template = f"{tmp_path.as_uri()}/{{{{ ds_nodash }}}}/s.jsonl"
    with DAG("late_backfill", schedule=None):
        skip = BrowseeSessionsExportOperator(task_id="t", destination=template, revisit=2)
        also = BrowseeSessionsExportOperator(
            task_id="u", destination=template, revisit=1, revisit_in_backfill=True
        )
    result, _ = run_like_airflow(skip, DAILY, dag_run=DagRun("backfill"))
    assert result["revisits"] == [] and "Backfill run: not revisiting 2 earlier windows" in logs()
    assert sorted(p.parent.name for p in tmp_path.rglob("s.jsonl")) == ["20240414"]
    result, _ = run_like_airflow(also, DAILY, dag_run=DagRun("backfill"))
    assert [r["window_start"] for r in result["revisits"]] == ["2024-04-13T00:00:00+00:00"]


def test_replaced_partitions_are_asset_events_of_their_own(
    sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    alias = AssetAlias("browsee-files")
    template = f"{tmp_path.as_uri()}/{{{{ ds_nodash }}}}/s.jsonl"
    with DAG("late_assets", schedule=None):
        operator = BrowseeSessionsExportOperator(
            task_id="t", destination=template, revisit=2, outlets=[alias]
        )
        default = BrowseeSessionsExportOperator(task_id="d", destination=template, revisit=2)
    run_like_airflow(operator, previous_window(DAILY))  # 2024-04-13 and the two days before it
    stale = tmp_path / "20240413" / "s.jsonl"
    stale.write_bytes(b"".join(stale.read_bytes().splitlines(keepends=True)[:-3]))

    result, context = run_like_airflow(operator, DAILY)
    events = context["outlet_events"][alias].asset_alias_events
    assert [(e.dest_asset_key.uri, e.extra.get("correction")) for e in events] == [
        ((tmp_path / "20240414" / "s.jsonl").as_uri(), None),
        (stale.as_uri(), True),
    ]
    assert events[1].extra["rows_after"] - events[1].extra["rows_before"] == 3

    stale.write_bytes(b"")
    result, context = run_like_airflow(default, DAILY)
    [asset] = default.outlets
    extra = context["outlet_events"][asset].extra
    assert [c["uri"] for c in extra["corrections"]] == [stale.as_uri()]
    assert json.loads(json.dumps(extra)) == extra  # the event's extra is JSON


# -- settle ----------------------------------------------------------------------------------------


def test_settle_waits_in_the_worker_until_the_window_has_settled(
    sandbox_reset: SandboxServer, tmp_path: Path, logs: Any
) -> None:
    end = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    ready = end + dt.timedelta(seconds=1.5)
    ready_monotonic = time.monotonic() + (ready - dt.datetime.now(UTC)).total_seconds()
    operator = BrowseeSessionsExportOperator(
        task_id="t", destination=(tmp_path / "s.jsonl").as_uri(), settle=1.5, deferrable=False
    )
    run_like_airflow(operator, (end - HOUR, end))
    assert dt.datetime.now(UTC) >= ready
    first_request = min(entry["started"] for entry in sandbox_reset.requests_log)
    assert first_request >= ready_monotonic - 0.01  # the sandbox logs monotonic times
    text = logs()
    assert (
        f"its data keeps arriving for settle=0:00:01.500000, so the export starts at {ready.isoformat()}"
        in text
    )
    assert re.search(r"waiting \d s in this worker", text)


def test_settle_defers_to_a_datetime_trigger_then_exports(
    sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    end = dt.datetime.now(UTC) + dt.timedelta(minutes=5)
    operator = BrowseeSessionsExportOperator(
        task_id="t", destination=(tmp_path / "s.jsonl").as_uri(), start=end - HOUR, end=end, deferrable=True
    )
    assert operator.settle == dt.timedelta(hours=1)  # Browsee's default
    with pytest.raises(TaskDeferred) as deferred:
        operator.pre_execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DateTimeTrigger) and trigger.moment == end + dt.timedelta(hours=1)
    assert deferred.value.method_name == "execute_settled"
    assert not sandbox_reset.requests_log

    past = dt.datetime(2024, 4, 15, tzinfo=UTC)
    operator.start, operator.end = past, past + HOUR  # the resumed task: settled, exports at once
    operator.pre_execute({})
    result = operator.execute_settled({}, event=None)
    assert result["rows"] > 0 and (tmp_path / "s.jsonl").exists()


def test_every_api_has_a_settle_default_of_its_own() -> None:
    classes = [*(cls for cls, _, _ in CASES.values()), OpenPanelChartsExportOperator]
    defaults = {cls.__name__: cls.default_settle for cls in classes}
    assert all(value > dt.timedelta(0) for value in defaults.values())
    assert dt.timedelta(minutes=1) <= defaults["OpenPanelEventsExportOperator"] <= dt.timedelta(minutes=10)


def test_overlapping_runs_revisiting_one_partition_leave_one_complete_file(
    sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    """A scheduled run revisiting 04-13 while a backfill run exports 04-13 itself: both complete."""
    sandbox_reset.config.update({"latency_ms": {"openpanel": 20}})
    template = f"{tmp_path.as_uri()}/{{{{ ds_nodash }}}}/events.parquet"
    with DAG("late_overlap", schedule=None):
        scheduled = OpenPanelEventsExportOperator(task_id="s", destination=template, revisit=1, page_size=500)
        backfill = OpenPanelEventsExportOperator(task_id="b", destination=template, page_size=500)
    previous = previous_window(DAILY)
    reference = tmp_path / "reference.parquet"
    backfill.for_window(previous, reference.as_uri()).execute({})
    partition = tmp_path / "20240413" / "events.parquet"
    partition.parent.mkdir()
    partition.write_bytes(b"PAR1 a partial file no run should ever leave")

    results: dict[str, Any] = {}

    def run(name: str, operator: BaseExportOperator, window: tuple[dt.datetime, dt.datetime]) -> None:
        results[name] = run_like_airflow(operator, window)[0]

    threads = [
        threading.Thread(target=run, args=("scheduled", scheduled, DAILY)),
        threading.Thread(target=run, args=("backfill", backfill, previous)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(results) == {"scheduled", "backfill"}  # both runs succeeded
    assert pq.read_table(partition).to_pylist() == pq.read_table(reference).to_pylist()
    assert sorted(p.name for p in partition.parent.iterdir()) == ["events.parquet"]
    [revisit] = results["scheduled"]["revisits"]
    assert revisit["rows_after"] == results["backfill"]["rows"] == pq.read_metadata(reference).num_rows


def test_consecutive_runs_with_revisit_converge_on_the_final_data(
    sandbox_reset: SandboxServer, tmp_path: Path
) -> None:
    """Late data on: each run at its window's end + settle writes a short day; the next run's revisit
    makes it equal the service's final data, row by row (events appear, counts grow to their value)."""
    from analytics_export_sandbox.braze import braze_window
    from analytics_export_sandbox.openpanel import openpanel_events

    sandbox_reset.config.update(
        {
            "late_share": {"openpanel": 0.3, "braze": 0.3},
            "late_horizon": {"openpanel": 6 * 3600, "braze": 6 * 3600},
            "openpanel_flush_lag": 10,
        }
    )
    root = tmp_path.as_uri()
    with DAG("late_converge", schedule=None):
        events = OpenPanelEventsExportOperator(
            task_id="events", destination=f"{root}/openpanel/{{{{ ds }}}}/events.jsonl", revisit=1
        )
        sessions = BrazeSessionsExportOperator(
            task_id="sessions",
            destination=f"{root}/braze/{{{{ ds }}}}/sessions.jsonl",
            unit="hour",
            revisit=1,
        )
    days = [dt.datetime(2024, 4, 13, tzinfo=UTC) + k * DAY for k in range(3)]
    first_rows, corrections = [], []
    for day in days:
        sandbox_reset.config.update({"now": (day + DAY + events.settle).timestamp()})
        result, _ = run_like_airflow(events, (day, day + DAY))
        first_rows.append(result["rows"])
        corrections += result["revisits"]
        run_like_airflow(sessions, (day, day + DAY))

    def lines(path: Path) -> list[Any]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    for day in days[:2]:  # the last day is the next run's to revisit
        final = list(openpanel_events(sandbox_reset.config, "proj-web", day.date(), day.date()))
        assert lines(tmp_path / "openpanel" / day.date().isoformat() / "events.jsonl") == final
        points = braze_window(sandbox_reset.config, day, day + DAY, "hour")
        want = [{**point, "app_id": None, "segment_id": None} for point in points]
        assert lines(tmp_path / "braze" / day.date().isoformat() / "sessions.jsonl") == want
    # Each day was short when its own run wrote it, and its revisit says by how much.
    finals = [len(list(openpanel_events(sandbox_reset.config, "proj-web", d.date(), d.date()))) for d in days]
    assert all(first < final for first, final in zip(first_rows, finals, strict=True))
    assert [(c["rows_before"], c["rows_after"], c["replaced"]) for c in corrections[1:]] == [
        (first_rows[k], finals[k], True) for k in (0, 1)
    ]
