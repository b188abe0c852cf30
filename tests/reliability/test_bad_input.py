"""Bad arguments fail early with a message naming the parameter, the bad value and what is allowed.

Static values fail when the operator is built (DAG parse); templated values fail after
rendering, before the first request reaches the API (the sandbox log stays empty).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import (
    OpenPanelChartsExportOperator,
    OpenPanelEventsExportOperator,
)
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import (
    SealmetricsCreateExportOperator,
    SealmetricsExportOperator,
)
from analytics_export_sandbox import SandboxServer
from tests.reliability.conftest import UTC, day, run_context

DEST = "file:///tmp/reliability-bad-input"
CHART_EVENTS = [{"name": "screen_view"}]


def _recent(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days_ago)


OPERATORS: dict[str, tuple[type, dict[str, Any]]] = {
    "browsee": (BrowseeSessionsExportOperator, {"destination": f"{DEST}/s.jsonl"}),
    "openpanel_events": (OpenPanelEventsExportOperator, {"destination": f"{DEST}/e.jsonl"}),
    "openpanel_charts": (
        OpenPanelChartsExportOperator,
        {"destination": f"{DEST}/c.csv", "events": CHART_EVENTS},
    ),
    "braze": (BrazeSessionsExportOperator, {"destination": f"{DEST}/b.csv"}),
    "peer5": (Peer5ExportOperator, {"destination": f"{DEST}/p.csv", "metrics": ["http"]}),
    "sealmetrics": (
        SealmetricsExportOperator,
        {"destination": f"{DEST}/m.csv", "export_type": "pages", "deferrable": False},
    ),
    "sealmetrics_create": (SealmetricsCreateExportOperator, {"export_type": "pages"}),
}

#: Shared by every operator built on BaseExportOperator: format, destination suffix, dates.
COMMON: list[tuple[str, Any, str, str]] = [
    ("output_format", "xml", "'xml'", "jsonl"),
    ("destination", f"{DEST}/file.txt", "file.txt", ".jsonl"),
    ("start", "2024-13-01", "'2024-13-01'", "ISO-8601"),
    ("end", "yesterday", "'yesterday'", "ISO-8601"),
    ("start", "15/04/2024", "'15/04/2024'", "ISO-8601"),
]

#: (operator, parameter, bad value, text naming the value, text naming what is allowed)
STATIC_CASES: list[tuple[str, str, Any, str, str]] = [
    *[("browsee", *case) for case in COMMON],
    ("browsee", "page_size", 0, "page_size=0", "1 to 100"),
    ("browsee", "page_size", 101, "page_size=101", "1 to 100"),
    ("browsee", "page_size", "50", "page_size='50'", "1 to 100"),
    ("browsee", "page_size", True, "page_size=True", "1 to 100"),
    ("browsee", "fields", ["bogus"], "'bogus'", "userId"),
    ("browsee", "fields", ["userId", "password"], "'password'", "duration"),
    ("browsee", "fields", [], "fields=[]", "non-empty"),
    ("browsee", "fields", [""], "fields=['']", "non-empty"),
    *[("openpanel_events", *case) for case in COMMON],
    ("openpanel_events", "page_size", 0, "page_size=0", "1 to 1000"),
    ("openpanel_events", "page_size", 1001, "page_size=1001", "1 to 1000"),
    ("openpanel_events", "max_concurrency", 0, "max_concurrency=0", "1 to 32"),
    ("openpanel_events", "max_concurrency", 33, "max_concurrency=33", "1 to 32"),
    ("openpanel_events", "includes", ["profile", "bogus"], "'bogus'", "meta"),
    ("openpanel_events", "includes", "everything", "'everything'", "profile"),
    ("openpanel_events", "events", [], "events=[]", "non-empty"),
    ("openpanel_events", "events", [""], "events=['']", "non-empty"),
    *[("openpanel_charts", *case) for case in COMMON],
    ("openpanel_charts", "interval", "year", "'year'", "month"),
    ("openpanel_charts", "interval", "1d", "'1d'", "day"),
    ("openpanel_charts", "date_range", "90d", "'90d'", "30d"),
    ("openpanel_charts", "events", "not json", "'not json'", "list of objects"),
    ("openpanel_charts", "events", [], "events=[]", "at least one event"),
    ("openpanel_charts", "events", ["screen_view"], "'screen_view'", "list of objects"),
    ("openpanel_charts", "events", [{"name": "a", "segment": "bogus"}], "'bogus'", "one_event_per_user"),
    ("openpanel_charts", "events", [{"name": "a", "colour": "red"}], "'colour'", "segment"),
    ("openpanel_charts", "events", [{"segment": "user"}], "name=None", "event name"),
    (
        "openpanel_charts",
        "events",
        [{"name": "a", "segment": "property_sum"}],
        "property",
        "properties.<name>",
    ),
    (
        "openpanel_charts",
        "events",
        [{"name": "a", "filters": [{"name": "path", "operator": "like", "value": ["/"]}]}],
        "'like'",
        "contains",
    ),
    (
        "openpanel_charts",
        "events",
        [{"name": "a", "filters": [{"name": "path", "operator": "is", "value": "/"}]}],
        "value='/'",
        "list of values",
    ),
    ("openpanel_charts", "breakdowns", [{"name": "planet"}], "'planet'", "country"),
    ("openpanel_charts", "breakdowns", "[{", "'[{'", "list of objects"),
    # At parse the organization's zone is unknown: 06:00 UTC is midnight in Chicago, but no zone
    # has a day start at :10 or :20 past (UTC offsets are multiples of 15 minutes).
    ("openpanel_charts", "start", "2024-04-15T06:10:00", "start=2024-04-15T06:10:00", "day boundary"),
    ("openpanel_charts", "end", "2024-04-16T00:20:00Z", "end=2024-04-16T00:20:00", "day boundary"),
    *[("braze", *case) for case in COMMON],
    ("braze", "unit", "week", "'week'", "hour"),
    ("braze", "unit", "days", "'days'", "day"),
    *[("peer5", *case) for case in COMMON],
    ("peer5", "interval", "2h", "'2h'", "1h"),
    ("peer5", "interval", "1d ", "'1d '", "14d"),
    ("peer5", "metrics", ["bytes"], "'bytes'", "rebuffered"),
    ("peer5", "metrics", "http", "'http'", "played"),
    ("peer5", "metrics", [], "metrics=[]", "sessions"),
    ("peer5", "filters", {"device": "tv"}, "'device'", "browser.name"),
    ("peer5", "filters", {"browser.name": 5}, "5", "string"),
    ("peer5", "filters", "browser.name=Chrome", "'browser.name=Chrome'", "country.code"),
    ("peer5", "dimensions", ["asn"], "'asn'", "isp.name"),
    ("peer5", "dimensions", "os.name", "'os.name'", "os.name"),
    ("peer5", "dimensions", ["os.name", "city.name", "isp.name"], "'isp.name'", "at most 2"),
    ("peer5", "dimensions", ["os.name", "os.name"], "'os.name'", "distinct"),
    ("sealmetrics", "output_format", "parquet", "'parquet'", "json"),
    ("sealmetrics", "destination", f"{DEST}/m.parquet", "m.parquet", ".csv"),
    ("sealmetrics", "start", "2024-13-01", "'2024-13-01'", "ISO-8601"),
    ("sealmetrics", "export_type", "users", "'users'", "landing_pages"),
    ("sealmetrics", "filters", {"city": "Paris"}, "'city'", "utm_source"),
    ("sealmetrics", "filters", {"country": 34}, "34", "string"),
    ("sealmetrics", "filters", ["country"], "['country']", "dict"),
    ("sealmetrics_create", "export_type", "Pages", "'Pages'", "pages"),
    ("sealmetrics_create", "export_format", "xlsx", "'xlsx'", "csv"),
    ("sealmetrics_create", "filters", {"utm_source ": "x"}, "'utm_source '", "utm_medium"),
    ("sealmetrics_create", "date_from", "15/04/2024", "'15/04/2024'", "YYYY-MM-DD"),
    ("sealmetrics_create", "date_to", "2024-04-31", "'2024-04-31'", "YYYY-MM-DD"),
]

#: Rules that can only be checked against the run (its window, today's date): before any request.
#: (operator, extra arguments, context window, parameter named, text naming what is allowed)
RUNTIME_CASES: list[tuple[str, dict[str, Any], tuple[dt.datetime, dt.datetime], str, str]] = [
    ("browsee", {}, (day("2024-04-15"), day("2024-04-15")), "start=2024-04-15", "before end"),
    ("openpanel_events", {}, (day("2024-04-16"), day("2024-04-15")), "start=2024-04-16", "before end"),
    (
        "openpanel_charts",
        {"interval": "day"},
        (day("2024-04-15") + dt.timedelta(hours=6), day("2024-04-16")),
        "start=2024-04-15T06:00:00+00:00",
        "day boundary",
    ),
    (
        "openpanel_charts",
        {"interval": "week"},
        (day("2024-04-17"), day("2024-04-24")),
        "start=2024-04-17",
        "week boundary",
    ),
    ("braze", {}, (day("2024-04-15"), day("2024-04-15")), "start=2024-04-15", "before end"),
    (
        "peer5",
        {"interval": "1m"},
        (_recent(30), _recent(30) + dt.timedelta(hours=1)),
        "interval='1m'",
        "coarser interval: ",
    ),
    (
        "peer5",
        {"interval": "10m"},
        (_recent(20), _recent(19)),
        "interval='10m'",
        "1d, 7d, 14d",
    ),
    ("sealmetrics", {}, (day("2024-04-15"), day("2024-04-14")), "start=2024-04-15", "before end"),
]

#: Templated values that render to something bad: (operator, parameter, template, value text, allowed text)
TEMPLATED_CASES: list[tuple[str, str, Any, str, str]] = [
    ("browsee", "fields", ["{{ 'bogus' }}"], "'bogus'", "userId"),
    ("browsee", "start", "{{ 'soon' }}", "'soon'", "ISO-8601"),
    ("browsee", "output_format", "{{ 'xml' }}", "'xml'", "parquet"),
    ("browsee", "destination", DEST + "/{{ 'x.txt' }}", "x.txt", ".csv"),
    ("openpanel_events", "includes", "{{ 'bogus' }}", "'bogus'", "profile"),
    ("openpanel_events", "end", "{{ '2024-02-30' }}", "'2024-02-30'", "ISO-8601"),
    ("openpanel_charts", "events", '{{ \'[{"name": "a", "segment": "bogus"}]\' }}', "'bogus'", "user"),
    ("openpanel_charts", "breakdowns", '{{ \'[{"name": "planet"}]\' }}', "'planet'", "country"),
    ("openpanel_charts", "date_range", "{{ '90d' }}", "'90d'", "30d"),
    ("braze", "start", "{{ 'monday' }}", "'monday'", "ISO-8601"),
    ("braze", "output_format", "{{ 'xls' }}", "'xls'", "csv"),
    ("peer5", "filters", {"{{ 'device' }}": "tv"}, "'device'", "browser.name"),
    ("peer5", "dimensions", ["{{ 'asn' }}"], "'asn'", "country.code"),
    ("peer5", "destination", DEST + "/{{ 'p.xml' }}", "p.xml", ".jsonl"),
    ("sealmetrics", "export_type", "{{ 'users' }}", "'users'", "pages"),
    ("sealmetrics", "filters", {"{{ 'city' }}": "Paris"}, "'city'", "utm_source"),
    ("sealmetrics", "output_format", "{{ 'parquet' }}", "'parquet'", "csv"),
    ("sealmetrics_create", "export_type", "{{ 'users' }}", "'users'", "pages"),
    ("sealmetrics_create", "date_from", "{{ '2024/04/01' }}", "'2024/04/01'", "YYYY-MM-DD"),
]


def _case_id(case: tuple[Any, ...]) -> str:
    return f"{case[0]}-{case[1]}={case[2]!r}"[:60]


def _cases(cases: list[tuple[Any, ...]]) -> list[Any]:
    """The table as pytest params."""
    return [pytest.param(case, id=_case_id(case)) for case in cases]


def _build(name: str, **overrides: Any) -> Any:
    operator, required = OPERATORS[name]
    return operator(task_id=f"bad_{name}", **{**required, **overrides})


def _assert_names(message: str, parameter: str, value_text: str, allowed: str) -> None:
    assert parameter in message, f"parameter {parameter!r} not named in: {message}"
    assert value_text in message, f"bad value {value_text!r} not shown in: {message}"
    assert allowed in message, f"allowed values ({allowed!r}) not given in: {message}"


@pytest.mark.parametrize("case", _cases(STATIC_CASES))
def test_static_bad_value_fails_at_dag_parse(case: tuple[str, str, Any, str, str]) -> None:
    name, parameter, value, value_text, allowed = case
    with pytest.raises(ValueError) as info:
        _build(name, **{parameter: value})
    _assert_names(str(info.value), parameter.split("[")[0], value_text, allowed)


@pytest.mark.parametrize("case", RUNTIME_CASES, ids=lambda case: f"{case[0]}-{case[3]}"[:60])
def test_run_dependent_rule_fails_before_any_request(
    case: tuple[str, dict[str, Any], tuple[dt.datetime, dt.datetime], str, str],
    clean_sandbox: SandboxServer,
) -> None:
    name, overrides, window, value_text, allowed = case
    op = _build(name, **overrides)
    with pytest.raises(ValueError) as info:
        op.execute(run_context(*window))
    assert value_text in str(info.value)
    assert allowed in str(info.value)
    assert clean_sandbox.requests_log == []


@pytest.mark.parametrize("case", _cases(TEMPLATED_CASES))
def test_templated_bad_value_fails_after_rendering_before_any_request(
    case: tuple[str, str, Any, str, str], clean_sandbox: SandboxServer
) -> None:
    name, parameter, template, value_text, allowed = case
    op = _build(name, **{parameter: template})  # templated: accepted at parse time
    context = {**run_context(day("2024-04-14"), day("2024-04-15")), "ti": None}
    op.render_template_fields(context)
    with pytest.raises(ValueError) as info:
        op.execute(context)
    _assert_names(str(info.value), parameter, value_text, allowed)
    assert clean_sandbox.requests_log == []


def test_every_operator_has_cases() -> None:
    for name in OPERATORS:
        assert any(case[0] == name for case in STATIC_CASES), name
        assert any(case[0] == name for case in TEMPLATED_CASES), name
